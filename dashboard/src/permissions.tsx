// What the logged-in user may do, from `GET /api/me`: the global role's permissions and,
// per project, the global role's and the project role's together. Pages show only the
// controls that will work (or disable them with the reason): a viewer never fills a form
// to learn at the end that the server refuses it.

import { createContext, useContext, type ReactNode } from 'react';
import type { Me } from './types';

export interface Permissions {
  /** Whether the user holds `permission` globally, or in `projectId` when given. */
  can: (permission: string, projectId?: string) => boolean;
  me: Me | null;
}

/** The permissions of `me`; with no `me` (tests, a server without `/api/me`), everything. */
export function permissionsOf(me: Me | null): Permissions {
  return {
    me,
    can: (permission, projectId) => {
      if (!me) return true;
      if (me.permissions.includes(permission)) return true;
      if (projectId === undefined) return false;
      const project = me.projects.find((candidate) => candidate.id === projectId || candidate.slug === projectId);
      return project?.permissions?.includes(permission) ?? false;
    },
  };
}

const PermissionsContext = createContext<Permissions>(permissionsOf(null));

export function PermissionsProvider({ me, children }: { me: Me | null; children: ReactNode }) {
  return <PermissionsContext.Provider value={permissionsOf(me)}>{children}</PermissionsContext.Provider>;
}

export function usePermissions(): Permissions {
  return useContext(PermissionsContext);
}

/** The words for a missing permission, shown where a control would be. */
export function missing(permission: string, where?: string): string {
  return `You need the ${permission} permission${where ? ` in ${where}` : ''} to change this; ask an administrator.`;
}

/** Renders `children` when the user holds `permission`; otherwise the reason, or nothing. */
export function Can({ permission, project, children, quiet = false }: { permission: string; project?: string; children: ReactNode; quiet?: boolean }) {
  const { can } = usePermissions();
  if (can(permission, project)) return <>{children}</>;
  if (quiet) return null;
  return (
    <p className="muted small" data-testid="no-permission">
      {missing(permission)}
    </p>
  );
}

/** Whether the user may add or remove a limit on `scope` (PRODUCT.md: the level's write permission). */
export function canWriteScope(can: Permissions['can'], scope: string): boolean {
  if (scope === 'global') return can('settings:write');
  const [kind, ...rest] = scope.split('/')[0].split(':');
  const id = rest.join(':');
  if (kind === 'model') return can('model:write');
  if (kind === 'project') return can('project:write', id);
  // Token scopes: the server checks the token's project; show the control to project writers.
  return can("project:write");
}
