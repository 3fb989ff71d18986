// The dashboard: loads the snapshot, follows the event stream, polls the Raft status,
// and redraws (at most once per frame) whatever changed.
//
// For tests and scripts the page exposes `data-version` (the applied topology
// version), `data-shards`, `data-nodes` and `data-feed` (the stream's state) on <body>.

import { ApiError, getJson, readToken, saveToken } from './api.js';
import { openFeed } from './feed.js';
import { renderAttention, renderDetail, renderEvents, renderMembers, renderNodes, time } from './panels.js';
import { pickOf, renderRing, shardsOf } from './ring.js';
import { Topology } from './topology.js';

const MAX_FEED = 200;
const STATUS_EVERY_MS = 2000;

const $ = (id) => document.getElementById(id);
const topology = new Topology();
const feedItems = [];
let feed = null;
let loading = false;
let pending = [];
let selected = null;
let drawQueued = false;
let statusTimer = null;
let retryTimer = null;

function showProblem(error) {
  const banner = $('problem');
  if (!error) {
    banner.hidden = true;
    return;
  }
  const hint = error instanceof ApiError && error.needsToken
    ? ' This server guards reads: enter a read token above.'
    : '';
  banner.textContent = `${error.message}.${hint}`;
  banner.hidden = false;
}

function setFeedState(state, detail) {
  document.body.dataset.feed = state;
  const label = state === 'live' ? `live · ${feed?.kind ?? ''}` : state;
  $('feed-state').textContent = label;
  $('feed-state').className = `pill feed-${state}`;
  if (state === 'refused') showProblem(new ApiError(detail.status, detail.message));
  else if (state === 'live') showProblem(null);
}

function pushFeed(item) {
  feedItems.unshift(item);
  if (feedItems.length > MAX_FEED) feedItems.length = MAX_FEED;
}

function draw() {
  drawQueued = false;
  document.body.dataset.version = topology.version;
  document.body.dataset.shards = topology.shards.size;
  document.body.dataset.nodes = topology.nodes.size;
  $('version').textContent = `version ${topology.version}`;
  renderRing($('ring'), topology);
  renderNodes($('nodes'), $('nodes-summary'), topology);
  renderAttention($('attention'), topology);
  renderDetail($('detail'), shardsOf(topology, selected), topology);
  renderEvents($('events'), feedItems);
}

function redraw() {
  if (!drawQueued) {
    drawQueued = true;
    requestAnimationFrame(draw);
  }
}

/** (Re)reads the whole snapshot; events that arrive meanwhile are applied after it. */
async function loadSnapshot() {
  loading = true;
  try {
    const body = await getJson('/api/topology/snapshot');
    topology.load(body.snapshot);
    showProblem(null);
  } catch (e) {
    showProblem(e);
    loading = false;
    pending = [];
    return false;
  }
  loading = false;
  const queued = pending;
  pending = [];
  queued.forEach(onEvent);
  redraw();
  return true;
}

function onEvent(event) {
  if (loading) {
    pending.push(event);
    return;
  }
  const outcome = topology.apply(event);
  if (outcome === 'gap') {
    pushFeed({ type: 'Resync', version: event.version, timestamp: Date.now(), detail: 'a version was missed: snapshot re-read' });
    loadSnapshot();
  } else if (outcome === 'applied') {
    pushFeed(event);
  }
  redraw();
}

function onReset(snapshot) {
  pushFeed({
    type: 'Reset', version: snapshot.version, timestamp: Date.now(),
    detail: 'the server no longer holds our resume point: snapshot re-read',
  });
  loadSnapshot();
}

async function pollStatus() {
  try {
    const body = await getJson('/api/cluster/status');
    renderMembers($('members'), body.cluster);
  } catch (e) {
    $('members').innerHTML = `<p class="quiet">cluster status unavailable: ${e.message}</p>`;
  }
  statusTimer = setTimeout(pollStatus, STATUS_EVERY_MS);
}

const HISTORY_SHOWN = 30;

/** The last few change sets before the snapshot, so the feed does not start empty. */
async function showRecentHistory(upTo) {
  try {
    // Not before the oldest version the server's history holds whole (410 otherwise).
    const stats = await getJson('/api/topology/stats');
    const since = Math.max(0, upTo - HISTORY_SHOWN, stats.historyOldestVersion ?? upTo);
    const body = await getJson(`/api/topology/events?sinceVersion=${since}&limit=${HISTORY_SHOWN * 4}`);
    const seen = new Set(feedItems.map((e) => e.version));
    for (const e of body.events) if (e.version <= upTo && !seen.has(e.version)) feedItems.push(e);
    feedItems.sort((a, b) => b.version - a.version);
    redraw();
  } catch {
    // an old history or a refused read: the live feed still works
  }
}

async function start() {
  feed?.close();
  feed = null;
  clearTimeout(statusTimer);
  clearTimeout(retryTimer);
  pollStatus();
  if (!(await loadSnapshot())) {
    retryTimer = setTimeout(start, 3000);
    return;
  }
  if (feed) return; // a newer start() (a token was entered meanwhile) opened it
  showRecentHistory(topology.version);
  feed = openFeed(() => topology.version, {
    event: onEvent,
    reset: onReset,
    progress: () => { $('progress').textContent = `stream heartbeat ${time(Date.now())}`; },
    state: setFeedState,
  });
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  saveToken($('token').value.trim());
  $('token').value = '';
  $('token-state').textContent = readToken() ? 'token set (this tab)' : 'no token';
  start();
});
$('token-state').textContent = readToken() ? 'token set (this tab)' : 'no token';
$('ring').addEventListener('click', (e) => {
  selected = pickOf(e.target);
  redraw();
});

start();
