/**
 * What MOUNT's DUMP lists: which client mounted which path. Advisory, as in every server, and
 * bounded: the oldest records go first. In memory here; a vserver keeps it in its service-state
 * arena (src/service), so that it moves with the vserver.
 */
export interface MountEntry {
  readonly host: string;
  readonly path: string;
}

export interface MountList {
  add(host: string, path: string): void;
  remove(host: string, path: string): void;
  /** UMNTALL: every record of one client. */
  removeHost(host: string): void;
  list(): MountEntry[];
}

export const MOUNT_RECORDS_MAX = 1024;

export class MemoryMountList implements MountList {
  private readonly mounts = new Map<string, MountEntry>();

  add(host: string, path: string): void {
    const key = `${host} ${path}`;
    this.mounts.delete(key);
    this.mounts.set(key, { host, path });
    while (this.mounts.size > MOUNT_RECORDS_MAX) {
      const oldest = this.mounts.keys().next().value;
      if (oldest === undefined) break;
      this.mounts.delete(oldest);
    }
  }

  remove(host: string, path: string): void {
    this.mounts.delete(`${host} ${path}`);
  }

  removeHost(host: string): void {
    for (const [key, entry] of this.mounts) if (entry.host === host) this.mounts.delete(key);
  }

  list(): MountEntry[] {
    return [...this.mounts.values()];
  }
}
