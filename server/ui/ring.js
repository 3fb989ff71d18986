// The hash ring as SVG: the 64-bit key space clockwise from 12 o'clock, three bands
// per shard — outer: the shard's status; middle: its primary's health; inner: the
// worst health among its replicas. Above MAX_ARCS shards a shard would be thinner
// than a pixel, so the ring shows MAX_ARCS equal slices of the key space instead,
// each colored by the worst status and health of the shards it overlaps.

import { HEALTHS, STATUSES, worse } from './topology.js';

export const MAX_ARCS = 256;
const SIZE = 600;
const CENTER = SIZE / 2;
const BANDS = [
  [200, 272], // status
  [170, 197], // primary health
  [140, 167], // replica health
];

/** The position of a 16-hex-digit key (empty: the end of the space) in [0, 1]. */
export function position(hex) {
  return hex ? parseInt(hex.slice(0, 8), 16) / 2 ** 32 : 1;
}

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function point(fraction, radius) {
  const angle = fraction * 2 * Math.PI - Math.PI / 2;
  return `${(CENTER + radius * Math.cos(angle)).toFixed(2)} ${(CENTER + radius * Math.sin(angle)).toFixed(2)}`;
}

/** An annular sector from `f0` to `f1` (fractions of the circle) between two radii. */
function sector(f0, f1, [inner, outer]) {
  if (f1 - f0 > 0.9999) {
    return sector(f0, f0 + 0.5, [inner, outer]) + sector(f0 + 0.5, f1, [inner, outer]);
  }
  const large = f1 - f0 > 0.5 ? 1 : 0;
  return `M${point(f0, outer)}A${outer} ${outer} 0 ${large} 1 ${point(f1, outer)}` +
    `L${point(f1, inner)}A${inner} ${inner} 0 ${large} 0 ${point(f0, inner)}Z`;
}

function worstHealth(topology, nodeIds) {
  return nodeIds.reduce((w, id) => worse(HEALTHS, topology.healthOf(id), w), 'healthy');
}

/** One arc per shard: [f0, f1, attributes, status, primary health, replica health, title]. */
function shardArcs(topology, shards) {
  return shards.map((s) => {
    const primary = topology.healthOf(s.primaryNode);
    const replicas = s.replicaNodes.length ? worstHealth(topology, s.replicaNodes) : 'unknown';
    const range = `${s.keyRange.start} – ${s.keyRange.end || 'end'}`;
    const title = `${s.shardId} [${range}) ${s.status}\nprimary ${s.primaryNode} (${primary})\n` +
      `replicas ${s.replicaNodes.map((r) => `${r} (${topology.healthOf(r)})`).join(', ') || 'none'}`;
    return [position(s.keyRange.start), position(s.keyRange.end), `data-shard="${escape(s.shardId)}"`,
      s.status, primary, replicas, title];
  });
}

/** The first and last slice a shard's range overlaps. */
function slicesOf(shard) {
  const from = Math.min(Math.floor(position(shard.keyRange.start) * MAX_ARCS), MAX_ARCS - 1);
  const to = Math.max(from, Math.ceil(position(shard.keyRange.end) * MAX_ARCS) - 1);
  return [from, Math.min(to, MAX_ARCS - 1)];
}

/** MAX_ARCS equal slices; a shard counts in every slice its range overlaps. */
function bucketArcs(topology, shards) {
  const buckets = Array.from({ length: MAX_ARCS }, () => ({
    count: 0, status: 'active', primary: 'healthy', replicas: 'healthy', byStatus: {}, first: null, last: null,
  }));
  for (const s of shards) {
    const primary = topology.healthOf(s.primaryNode);
    const replicas = s.replicaNodes.length ? worstHealth(topology, s.replicaNodes) : 'unknown';
    const [from, to] = slicesOf(s);
    for (let i = from; i <= to; i++) {
      const b = buckets[i];
      b.count += 1;
      b.byStatus[s.status] = (b.byStatus[s.status] || 0) + 1;
      b.status = worse(STATUSES, s.status, b.status);
      b.primary = worse(HEALTHS, primary, b.primary);
      b.replicas = worse(HEALTHS, replicas, b.replicas);
      b.first ??= s.shardId;
      b.last = s.shardId;
    }
  }
  return buckets.map((b, i) => {
    const counts = STATUSES.filter((st) => b.byStatus[st]).map((st) => `${b.byStatus[st]} ${st}`).join(', ');
    const start = (i * 2 ** 56).toString(16).padStart(16, '0');
    const title = `keys from ${start}: ${b.count} shards (${counts})\n${b.first ?? ''} … ${b.last ?? ''}\n` +
      `worst primary health ${b.primary}, worst replica health ${b.replicas}`;
    return [i / MAX_ARCS, (i + 1) / MAX_ARCS, `data-bucket="${i}" data-count="${b.count}"`,
      b.count ? b.status : 'empty', b.primary, b.replicas, title];
  });
}

/** Draws the ring of `topology` into the <svg> element `svg`. */
export function renderRing(svg, topology) {
  const shards = topology.shardsInOrder();
  const aggregated = shards.length > MAX_ARCS;
  const arcs = aggregated ? bucketArcs(topology, shards) : shardArcs(topology, shards);
  const parts = [`<g class="${aggregated ? 'ring aggregated' : 'ring'}">`];
  for (const [f0, f1, attributes, status, primary, replicas, title] of arcs) {
    parts.push(`<g class="arc" ${attributes} data-status="${status}"><title>${escape(title)}</title>` +
      `<path class="st-${status}" d="${sector(f0, f1, BANDS[0])}"/>` +
      `<path class="h-${primary}" d="${sector(f0, f1, BANDS[1])}"/>` +
      `<path class="h-${replicas}" d="${sector(f0, f1, BANDS[2])}"/></g>`);
  }
  parts.push('</g>');
  const ticks = [[0, '0000…', 'middle'], [0.25, '4000…', 'start'], [0.5, '8000…', 'middle'], [0.75, 'c000…', 'end']];
  for (const [f, label, anchor] of ticks) {
    const [x, y] = point(f, 284).split(' ');
    parts.push(`<text class="tick" x="${x}" y="${y}" text-anchor="${anchor}">${label}</text>`);
  }
  const unit = aggregated ? `${MAX_ARCS} slices of ~${Math.round(shards.length / MAX_ARCS)} shards` : 'one arc per shard';
  parts.push(`<text class="center big" x="${CENTER}" y="${CENTER - 22}">v${topology.version}</text>`,
    `<text class="center" x="${CENTER}" y="${CENTER + 8}">${shards.length} shards · ${topology.nodes.size} nodes</text>`,
    `<text class="center small" x="${CENTER}" y="${CENTER + 30}">${escape(unit)}</text>`,
    `<text class="center small" x="${CENTER}" y="${CENTER + 50}">configHash ${escape(topology.configHash)}</text>`);
  svg.setAttribute('viewBox', `-40 -4 ${SIZE + 80} ${SIZE + 8}`);
  svg.innerHTML = parts.join('');
}

/** What a click on the ring picked: `{shard}`, `{bucket}` or null (kept across redraws). */
export function pickOf(element) {
  const arc = element.closest('[data-shard],[data-bucket]');
  if (!arc) return null;
  return arc.dataset.shard ? { shard: arc.dataset.shard } : { bucket: Number(arc.dataset.bucket) };
}

/** The shards a pick stands for (one shard, or the shards of a slice). */
export function shardsOf(topology, pick) {
  if (!pick) return [];
  if (pick.shard !== undefined) return [topology.shards.get(pick.shard)].filter(Boolean);
  return topology.shardsInOrder().filter((s) => {
    const [from, to] = slicesOf(s);
    return from <= pick.bucket && pick.bucket <= to;
  });
}
