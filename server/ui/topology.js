// The dashboard's copy of the topology: one snapshot, then the server's events
// replayed in version order (the client library's rules: a removal deletes the
// entity, every other event carries the entity's whole new state).

export class Topology {
  constructor() {
    this.clear();
  }

  clear() {
    this.version = 0;
    this.timestamp = 0;
    this.configHash = '';
    this.shards = new Map();
    this.nodes = new Map();
    this.sorted = null;
  }

  /** Replaces everything with a snapshot (`GET /api/topology/snapshot`). */
  load(snapshot) {
    this.clear();
    this.version = snapshot.version;
    this.timestamp = snapshot.timestamp;
    this.configHash = snapshot.configHash;
    for (const shard of Object.values(snapshot.shardMap)) this.shards.set(shard.shardId, shard);
    for (const node of Object.values(snapshot.nodeStatus)) this.nodes.set(node.nodeId, node);
  }

  /**
   * Applies one event: 'applied', 'old' (the state already has it) or 'gap' (a
   * version is missing: the caller re-reads the snapshot).
   */
  apply(event) {
    if (event.version < this.version) return 'old';
    if (event.version > this.version + 1) return 'gap';
    const value = event.newValue;
    if (event.type === 'ShardRemove') {
      this.shards.delete(event.shardId ?? event.oldValue?.shardId);
      this.sorted = null;
    } else if (event.type === 'NodeLeave') {
      this.nodes.delete(event.nodeId ?? event.oldValue?.nodeId);
    } else if (value && 'shardId' in value) {
      this.shards.set(value.shardId, value);
      this.sorted = null;
    } else if (value && 'nodeId' in value) {
      this.nodes.set(value.nodeId, value);
    }
    this.version = event.version;
    this.timestamp = event.timestamp;
    return 'applied';
  }

  /** The shards in ring order (by the start of their key range). */
  shardsInOrder() {
    if (!this.sorted) {
      this.sorted = [...this.shards.values()].sort((a, b) =>
        a.keyRange.start < b.keyRange.start ? -1 : a.keyRange.start > b.keyRange.start ? 1 : 0,
      );
    }
    return this.sorted;
  }

  healthOf(nodeId) {
    return this.nodes.get(nodeId)?.health ?? 'unknown';
  }
}

/** Severity order (worst last) of shard statuses and node health. */
export const STATUSES = ['active', 'readonly', 'migrating', 'offline'];
export const HEALTHS = ['healthy', 'unknown', 'degraded', 'unhealthy'];

export function worse(order, a, b) {
  return order.indexOf(a) >= order.indexOf(b) ? a : b;
}
