import { useMemo, useState } from 'react';
import { BarList } from '../../components/charts';
import { Card, ErrorBox, Loading } from '../../components/ui';
import { usd } from '../../format';
import { useApi } from '../../hooks';
import type { Totals } from '../../types';
import { PERIODS, UsageCharts, periodStart, topModels, type PeriodKey } from '../Overview';
import { CallsExplorer } from '../Usage';
import type { TabProps } from '../Project';

export function LogsTab({ project }: TabProps) {
  return <CallsExplorer fixedProject={project.id} />;
}

export function ProjectUsageTab({ project }: TabProps) {
  const [periodKey, setPeriodKey] = useState<PeriodKey>('30d');
  const from = useMemo(() => periodStart(periodKey), [periodKey]);
  const byModel = useApi<{ models: (Totals & { model_id: string })[] }>('/api/usage/by-model', { project: project.id, from });
  return (
    <>
      <div className="row">
        <label className="inline-select">
          <span className="visually-hidden">Period</span>
          <select value={periodKey} onChange={(event) => setPeriodKey(event.target.value as PeriodKey)}>
            {Object.entries(PERIODS).map(([key, value]) => (
              <option key={key} value={key}>
                {value.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      <UsageCharts project={project.id} periodKey={periodKey} />
      <Card title="By model">
        {byModel.error ? (
          <ErrorBox error={byModel.error} retry={byModel.reload} />
        ) : !byModel.data ? (
          <Loading />
        ) : (
          <BarList label="Spend by model" rows={topModels(byModel.data.models, Infinity, `/projects/${project.id}/logs`)} format={usd} empty="No calls in this period." />
        )}
      </Card>
    </>
  );
}
