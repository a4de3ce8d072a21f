import { Empty, ErrorBox, Loading, PageHeader, Tabs } from '../components/ui';
import { useApi } from '../hooks';
import { Link } from '../router';
import type { Project } from '../types';
import { GeneralTab } from './project/General';
import { RoutingTab } from './project/Routing';
import { ProjectModelsTab } from './project/Models';
import { TokensTab } from './project/Tokens';
import { MembersTab } from './project/Members';
import { LogsTab, ProjectUsageTab } from './project/Usage';
import { PlaygroundTab } from './project/Playground';

export const PROJECT_TABS = [
  ['general', 'General'],
  ['routing', 'Routing'],
  ['models', 'Models'],
  ['tokens', 'Tokens'],
  ['members', 'Members'],
  ['logs', 'Logs'],
  ['usage', 'Usage'],
  ['playground', 'Playground'],
] as const;

export function ProjectPage({ projectKey, tab }: { projectKey: string; tab: string }) {
  const loaded = useApi<Project>(`/api/projects/${encodeURIComponent(projectKey)}`);
  // A project the caller may not open (not a member) or that does not exist is a state of
  // the page, not a failure: say which, and lead back to the projects they have.
  if (loaded.error?.status === 403 || loaded.error?.status === 404) {
    return (
      <>
        <PageHeader title="Project" />
        <div data-testid="project-unavailable">
          <Empty title={loaded.error.status === 403 ? 'You are not a member of this project.' : 'There is no such project.'}>
            {loaded.error.status === 403 ? 'Ask an admin or one of its members to add you. ' : 'It may have been deleted. '}
            <Link to="/projects">Your projects</Link>
          </Empty>
        </div>
      </>
    );
  }
  if (loaded.error) return <ErrorBox error={loaded.error} retry={loaded.reload} />;
  if (!loaded.data) return <Loading what="Loading the project" />;
  const project = loaded.data;
  const props = { project, reload: loaded.reload };
  return (
    <>
      <div className="breadcrumbs">
        <Link to="/projects">Projects</Link> /
      </div>
      <PageHeader title={project.name} />
      <Tabs label="Project sections" active={tab} items={PROJECT_TABS.map(([id, label]) => ({ id, label, to: `/projects/${project.id}/${id}` }))} />
      <div className="tab-panel">
        {tab === 'general' ? <GeneralTab {...props} />
        : tab === 'routing' ? <RoutingTab {...props} />
        : tab === 'models' ? <ProjectModelsTab {...props} />
        : tab === 'tokens' ? <TokensTab {...props} />
        : tab === 'members' ? <MembersTab {...props} />
        : tab === 'logs' ? <LogsTab {...props} />
        : tab === 'usage' ? <ProjectUsageTab {...props} />
        : tab === 'playground' ? <PlaygroundTab {...props} />
        : <ErrorBox error={`there is no tab “${tab}”`} />}
      </div>
    </>
  );
}

export interface TabProps {
  project: Project;
  reload: () => void;
}
