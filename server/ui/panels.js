// The side panels: data nodes with health, Raft members and leader, the event feed,
// and the details of the shards under the pointer. Every panel is redrawn whole from
// the state it is given (they are small: the ring carries the per-shard picture).

import { HEALTHS, STATUSES } from './topology.js';

const MAX_NODE_ROWS = 200;
const MAX_DETAIL_ROWS = 64;

const escape = (text) =>
  String(text ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const badge = (kind, value) => `<span class="badge ${kind}-${escape(value)}">${escape(value)}</span>`;

export const time = (ms) => (ms ? new Date(ms).toLocaleTimeString([], { hour12: false }) : '—');

/** Counts of `values` in the order of `order`, as badges with numbers. */
function counts(kind, order, values) {
  const by = {};
  for (const v of values) by[v] = (by[v] || 0) + 1;
  return order.filter((v) => by[v]).map((v) => `${badge(kind, v)} ${by[v]}`).join(' ');
}

/** Data nodes, the least healthy first, with how many shards each leads and follows. */
export function renderNodes(element, summary, topology) {
  const roles = new Map();
  for (const s of topology.shards.values()) {
    const r = roles.get(s.primaryNode) ?? roles.set(s.primaryNode, [0, 0]).get(s.primaryNode);
    r[0] += 1;
    for (const id of s.replicaNodes) {
      const q = roles.get(id) ?? roles.set(id, [0, 0]).get(id);
      q[1] += 1;
    }
  }
  const nodes = [...topology.nodes.values()].sort(
    (a, b) => HEALTHS.indexOf(b.health) - HEALTHS.indexOf(a.health) || a.nodeId.localeCompare(b.nodeId, undefined, { numeric: true }),
  );
  summary.innerHTML = `${nodes.length} nodes: ${counts('h', HEALTHS, nodes.map((n) => n.health))}`;
  const rows = nodes.slice(0, MAX_NODE_ROWS).map((n) => {
    const [primaries, replicas] = roles.get(n.nodeId) ?? [0, 0];
    return `<tr data-node="${escape(n.nodeId)}" data-health="${escape(n.health)}"><td>${escape(n.nodeId)}</td>` +
      `<td>${badge('h', n.health)}</td><td>${escape(n.address)}</td><td class="num">${primaries}</td>` +
      `<td class="num">${replicas}</td><td class="num">${n.failureCount}</td>` +
      `<td class="error" title="${escape(n.lastError)}">${escape(n.lastError)}</td></tr>`;
  });
  if (nodes.length > MAX_NODE_ROWS) {
    rows.push(`<tr><td colspan="7" class="more">… and ${nodes.length - MAX_NODE_ROWS} more (healthy ones last)</td></tr>`);
  }
  element.innerHTML = '<thead><tr><th>node</th><th>health</th><th>address</th><th>primary</th>' +
    `<th>replica</th><th>failures</th><th>last error</th></tr></thead><tbody>${rows.join('')}</tbody>`;
}

/** The Raft members from `GET /api/cluster/status`, the leader marked. */
export function renderMembers(element, cluster) {
  const rows = cluster.members.map((m) => {
    const leader = m.nodeId === cluster.leader;
    return `<tr data-member="${m.nodeId}"${leader ? ' class="leader"' : ''}><td>${m.nodeId}${leader ? ' ★ leader' : ''}</td>` +
      `<td>${escape(m.role)}</td><td>${escape(m.address)}</td><td class="num">${m.matchedIndex ?? '—'}</td></tr>`;
  });
  element.innerHTML =
    `<p class="facts">term <b>${cluster.term}</b> · leader <b data-leader="${cluster.leader}">${cluster.leader || 'none'}</b>` +
    ` · this server: ${cluster.nodeId} (${escape(cluster.state)}) · committed ${cluster.committedIndex ?? '—'}` +
    ` · applied ${cluster.appliedIndex ?? '—'}</p>` +
    '<table><thead><tr><th>member</th><th>role</th><th>peer address</th><th>matched</th></tr></thead>' +
    `<tbody>${rows.join('')}</tbody></table>`;
}

/** What one event changed, in a few words. */
function describe(e) {
  const value = e.newValue ?? e.oldValue;
  if (e.detail) return e.detail;
  if (e.type === 'NodeHealthChange') {
    return `${e.oldValue?.health ?? '?'} → ${e.newValue?.health ?? '?'}${e.newValue?.lastError ? `: ${e.newValue.lastError}` : ''}`;
  }
  if (value && 'shardId' in value) {
    const range = `[${value.keyRange.start}, ${value.keyRange.end || 'end'})`;
    return `${range} ${value.status} on ${value.primaryNode} + ${value.replicaNodes.join(', ')}`;
  }
  if (value && 'nodeId' in value) return `${value.address} ${value.health}`;
  return '';
}

/** The newest events first. */
export function renderEvents(element, events) {
  element.innerHTML = events.map((e) =>
    `<li data-version="${e.version}" data-type="${escape(e.type)}"><span class="when">${time(e.timestamp)}</span>` +
    `<span class="ver">v${e.version}</span>${badge('ev', e.type)}` +
    `<span class="subject">${escape(e.shardId ?? e.nodeId ?? '')}</span>` +
    `<span class="what">${escape(describe(e))}</span></li>`).join('');
}

/** Shards whose status is not active (what an operator looks at first). */
export function renderAttention(element, topology) {
  const odd = topology.shardsInOrder().filter((s) => s.status !== 'active');
  const summary = counts('st', STATUSES, [...topology.shards.values()].map((s) => s.status));
  element.innerHTML = `<p class="facts">${topology.shards.size} shards: ${summary}</p>` +
    (odd.length ? shardTable(odd) : '<p class="quiet">every shard is active</p>');
}

/** The shards of a clicked arc or slice. */
export function renderDetail(element, shards, topology) {
  if (!shards || !shards.length) {
    element.innerHTML = '<p class="quiet">point at the ring: click an arc for its shards</p>';
    return;
  }
  element.innerHTML = shardTable(shards, topology);
}

function shardTable(shards, topology) {
  const shown = shards.slice(0, MAX_DETAIL_ROWS);
  const health = (id) => {
    if (!topology) return '';
    const h = escape(topology.healthOf(id));
    return ` <span class="dot h-${h}" title="${h}"></span>`;
  };
  const node = (id) => `<span class="nowrap">${escape(id)}${health(id)}</span>`;
  const migrating = shown.some((s) => s.migration);
  const rows = shown.map((s) =>
    `<tr data-shard-row="${escape(s.shardId)}"><td>${escape(s.shardId)}</td><td>${badge('st', s.status)}</td>` +
    `<td class="mono">${escape(s.keyRange.start)}<br>${escape(s.keyRange.end || 'end')}</td>` +
    `<td>${node(s.primaryNode)}</td><td>${s.replicaNodes.map(node).join(' ')}</td>` +
    (migrating ? `<td>${s.migration ? `${escape(s.migration.from)} → ${escape(s.migration.to)} ${s.migration.percent}%` : ''}</td>` : '') +
    '</tr>');
  const more = shards.length > MAX_DETAIL_ROWS ? `<p class="more">… and ${shards.length - MAX_DETAIL_ROWS} more</p>` : '';
  return '<table><thead><tr><th>shard</th><th>status</th><th>key range</th><th>primary</th><th>replicas</th>' +
    `${migrating ? '<th>migration</th>' : ''}</tr></thead><tbody>${rows.join('')}</tbody></table>${more}`;
}
