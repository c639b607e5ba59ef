// workflow_trace lineage viewer: plain ES2020, no dependencies, no build step.
//
// Data: the JSON v2 graph (notes/v2.md), inlined in #wt-data (offline) or fetched from
// /api/graph?scope=S (live, polled through /api/version). Every piece of user text reaches the page
// through textContent or an SVG attribute, never as markup.
//
// Pipeline on every change: allowed set (scope + "failed only") -> visible set (newest tasks or the
// focused node, expanded by `depth` lineage hops) -> folding (same-name tasks, data with the same
// neighbours) -> layered layout (a small Sugiyama, as in the static export) -> SVG.
"use strict";
(() => {
  const CARD_W = 260, CARD_H = 80, H_GAP = 90, V_GAP = 24, COMPONENT_GAP = 48, MARGIN = 24;
  const SWEEPS = 4, PLACEHOLDER_H = 12, MAX_PLACEHOLDERS = 20000;
  const NEWEST = 30;         // tasks shown when nothing is focused
  const FOLD_TASKS = 3;      // same-name tasks folded into one card from this many
  const FOLD_DATA = 4;       // data nodes of one kind with the same writers folded from this many
  const EXPAND_MAX = 100;    // a click opens a fold up to this size (a bigger one lists its members)
  const MAX_CARDS = 1500;    // beyond this the view is cut (closest to the focus first)
  const POLL_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";

  // (stroke/icon colour, background) per kind, and 24x24 glyphs: as in the static HTML export.
  const COLORS = {
    task: ["#2563eb", "#dbeafe"], project: ["#7c3aed", "#ede9fe"], dataset: ["#4f46e5", "#e0e7ff"],
    file: ["#475569", "#e2e8f0"], model: ["#ea580c", "#ffedd5"], folder: ["#b45309", "#fef3c7"],
    job: ["#0d9488", "#ccfbf1"], app: ["#db2777", "#fce7f3"],
  };
  const ICONS = {
    task: "M8 5v14l11-7z",
    project: "M4 4h7v7H4zM13 4h7v7h-7zM4 13h7v7H4zM13 13h7v7h-7z",
    dataset: "M8 3h13v13H8zM10 5v9h9V5zM3 8h3v10h10v3H3z",
    file: "M6 2h8l6 6v14H6zM13 3.5V9h5.5z",
    model: "M12 2l9 5v10l-9 5-9-5V7zM12 4.3L5.2 8 12 11.7 18.8 8zM5 9.7v6.1l6 3.3v-6.1zM13 13v6.1l6-3.3V9.7z",
    folder: "M2 5h7l2 2h11v13H2z",
    job: "M8 2h8v3H8zM5 4h2v3h10V4h2v18H5zM8 12l1.5-1.5 2 2 4-4L17 10l-5.5 5.5z",
    app: "M3 4h18v16H3zM5 8v10h14V8z",
  };
  const KIND_NAMES = {
    task: "Task", project: "Project", dataset: "Dataset", file: "File", model: "Model weights",
    folder: "Folder", job: "Labeling job", app: "App session",
  };
  const PLURALS = { task: "tasks", project: "projects", dataset: "datasets", file: "files", model: "model files",
    folder: "folders", job: "labeling jobs", app: "app sessions" };

  const $ = (id) => document.getElementById(id);
  const config = JSON.parse($("wt-config").textContent);

  const state = {
    data: null, model: null, version: null,
    full: null,               // offline: the graph of the file (data is the scope shown of it)
    scope: "workspace", focus: null, depth: 2, failedOnly: false,
    expanded: new Set(),      // fold ids the user opened
    selected: null,           // card id shown in the details panel
    view: null,               // the computed view: hops, highlight, focus, allowed set
    lay: null,                // its layout
    cards: null,              // card id -> card of the current view
  };

  // -- small helpers -------------------------------------------------------------------------------

  /** An element with attributes (`text` sets textContent, `on*` adds a listener) and children. */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    setAll(node, attrs);
    for (const c of children) if (c != null) node.append(c);
    return node;
  }
  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(SVG, tag);
    setAll(node, attrs);
    for (const c of children) if (c != null) node.append(c);
    return node;
  }
  function setAll(node, attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, String(v));
    }
  }
  const clip = (text, n) => {
    const flat = String(text ?? "").split(/\s+/).filter(Boolean).join(" ");
    return flat.length <= n ? flat : flat.slice(0, n - 1) + "…";
  };
  const clipLeft = (text, n) => (text.length <= n ? text : "…" + text.slice(text.length - n + 1));
  const plural = (n, word) => `${n.toLocaleString("en")} ${word}${n === 1 ? "" : "s"}`;
  const styleKind = (n) => (n.kind === "file" && n.model_weight ? "model" : n.kind);
  const isFailed = (n) => n.task?.status === "failed";
  const shortId = (id) => (id.length > 16 ? `${id.slice(0, 6)}…${id.slice(-6)}` : id);
  const hashId = (id) => encodeURIComponent(id).replace(/%3A/gi, ":").replace(/%2F/gi, "/");

  function duration(s) {
    if (s == null) return "-";
    if (s < 0.0005) return "< 1 ms";
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 60) return `${Math.round(s * 10) / 10} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  }
  const localTime = (iso) => (iso ? new Date(iso).toLocaleString() : "-");
  function runSeconds(run) {
    if (!run.started_at || !run.finished_at) return null;
    return (Date.parse(run.finished_at) - Date.parse(run.started_at)) / 1000;
  }

  /** Instance links only when the instance is known, and only instance-relative paths ("/files/..."). */
  function instanceLink(card) {
    const server = state.data?.server, url = card?.url;
    if (!server || !url || !/^https?:\/\/[^\s/]+/.test(server)) return null;
    if (!url.startsWith("/") || url.startsWith("//") || /[\r\n\t\\]/.test(url)) return null;
    return server.replace(/\/+$/, "") + url;
  }

  // -- the model: indexes over the JSON ------------------------------------------------------------

  function buildModel(data) {
    const nodes = new Map();
    for (const n of data.nodes || []) nodes.set(n.id, n);
    const edges = data.edges || [];
    const outE = new Map(), inE = new Map();
    const producers = new Map(), readers = new Map();  // "dataId\0gen" -> edge indexes
    const push = (map, key, v) => { const a = map.get(key); if (a) a.push(v); else map.set(key, [v]); };
    edges.forEach((e, i) => {
      for (const id of [e.source, e.target]) {
        if (!nodes.has(id)) nodes.set(id, { id, kind: id.split(":")[0], label: id, description: "",
          card: null, path: null, versions: [], generations: [], task: null });
      }
      push(outE, e.source, i);
      push(inE, e.target, i);
      const gen = e.generation ?? 1;
      if (e.relation === "output") push(producers, `${e.target}\0${gen}`, i);
      else push(readers, `${e.source}\0${gen}`, i);
    });
    const tasks = [...nodes.values()].filter((n) => n.kind === "task");
    tasks.sort((a, b) => String(a.task?.started_at ?? "").localeCompare(String(b.task?.started_at ?? "")));
    const haystack = new Map();
    for (const n of nodes.values()) {
      haystack.set(n.id, `${n.id} ${n.label ?? ""} ${n.path ?? ""} ${n.task?.name ?? ""}`.toLowerCase());
    }
    return { nodes, edges, outE, inE, producers, readers, tasks, haystack };
  }

  /**
   * The node a scope names, as the server's Graph.find reads it: its id, else a node of that kind by
   * its id in the store (project:1 for a local project) or by its path.
   */
  function scopeNode(data, scope) {
    const nodes = data.nodes || [];
    if (nodes.some((n) => n.id === scope)) return scope;
    const [kind, ...rest] = scope.split(":");
    const ident = rest.join(":").trim();
    if (!ident) return null;
    const same = nodes.filter((n) => n.kind === kind);
    const byId = /^\d+$/.test(ident) ? same.find((n) => n.external_id === Number(ident)) : null;
    const strip = (p) => p.replace(/\/+$/, "");
    return (byId ?? same.find((n) => n.path && strip(n.path) === strip(ident)))?.id ?? null;
  }

  /**
   * Offline the page holds the workspace: a scope is cut from it here exactly as Graph.scoped() cuts it
   * on the server (project: every edge of the tasks that touched it; task: its own edges), so that the
   * file and `workflow-trace ui` show the same graph. Null for a scope naming nothing.
   */
  function scopeData(data, scope) {
    if (scope === "workspace") return data;
    const key = scopeNode(data, scope);
    if (!key) return null;
    const edges = data.edges || [];
    const taskOf = (e) => (e.relation === "input" ? e.target : e.source);
    const dataOf = (e) => (e.relation === "input" ? e.source : e.target);
    let kept;
    if (key.startsWith("project:")) {
      const tasks = new Set(edges.filter((e) => dataOf(e) === key).map(taskOf));
      kept = edges.filter((e) => tasks.has(taskOf(e)));
    } else kept = edges.filter((e) => taskOf(e) === key || dataOf(e) === key);
    const keys = new Set([key]);
    for (const e of kept) { keys.add(e.source); keys.add(e.target); }
    return { ...data, scope: key, nodes: (data.nodes || []).filter((n) => keys.has(n.id)), edges: kept };
  }

  /** The node ids the "failed only" switch lets through (null: all). */
  function allowedSet(model) {
    let allowed = null;
    if (state.failedOnly) {
      const kept = new Set();
      for (const t of model.tasks) {
        if (!isFailed(t) || (allowed && !allowed.has(t.id))) continue;
        kept.add(t.id);
        for (const i of [...(model.outE.get(t.id) || []), ...(model.inE.get(t.id) || [])]) {
          const e = model.edges[i];
          kept.add(e.source); kept.add(e.target);
        }
      }
      allowed = kept;
    }
    return allowed;
  }

  /**
   * Lineage from `start` in one direction, following generations (notes/v2.md): upstream of a task are
   * the tasks that produced the generation it read (never itself), downstream the tasks that read the
   * generation it wrote. Returns node id -> hops (tasks count a hop, their data sit with them) and the
   * edge indexes walked.
   */
  function walk(model, start, dir, maxHops, allowed) {
    const hops = new Map([[start, 0]]), edges = new Set();
    const ok = (id) => !allowed || allowed.has(id);
    const queue = [start];
    const reach = (id, h, i) => {
      if (!ok(id)) return false;
      edges.add(i);
      if (hops.has(id)) return false;
      hops.set(id, h);
      return true;
    };
    for (let q = 0; q < queue.length; q++) {
      const id = queue[q], h = hops.get(id);
      const node = model.nodes.get(id);
      const isTask = node.kind === "task";
      if (!isTask) {
        // A data node: every generation's producers (up) or readers (down).
        for (const i of (dir === "up" ? model.inE : model.outE).get(id) || []) {
          const e = model.edges[i];
          const other = dir === "up" ? e.source : e.target;
          if ((e.relation === "output") === (dir === "up") && h < maxHops && reach(other, h + 1, i)) queue.push(other);
        }
        continue;
      }
      for (const i of (dir === "up" ? model.inE : model.outE).get(id) || []) {
        const e = model.edges[i];
        const data = dir === "up" ? e.source : e.target;
        const consumedTask = model.nodes.get(data)?.kind === "task";
        if (consumedTask) {
          // A task read as a node (consumes_task): the edge leads straight to that task.
          if (h < maxHops && reach(data, h + 1, i)) queue.push(data);
          continue;
        }
        if ((dir === "up") !== (e.relation === "input")) continue;
        if (!ok(data)) continue;
        edges.add(i);
        if (!hops.has(data)) hops.set(data, h);
        if (h >= maxHops) continue;
        const key = `${data}\0${e.generation ?? 1}`;
        for (const j of (dir === "up" ? model.producers : model.readers).get(key) || []) {
          const f = model.edges[j];
          const task = dir === "up" ? f.source : f.target;
          if (task !== id && reach(task, h + 1, j)) queue.push(task);
        }
      }
    }
    return { hops, edges };
  }

  // -- the view: visible nodes, folding ------------------------------------------------------------

  function computeView(model) {
    const allowed = allowedSet(model);
    const depth = state.depth;
    const hops = new Map();
    const merge = (m) => { for (const [id, h] of m) if (!hops.has(id) || hops.get(id) > h) hops.set(id, h); };
    let highlight = null, seeds;
    const focus = state.focus && model.nodes.has(state.focus) && (!allowed || allowed.has(state.focus))
      ? state.focus : null;
    if (focus) {
      seeds = [focus];
      const up = walk(model, focus, "up", Infinity, allowed), down = walk(model, focus, "down", Infinity, allowed);
      highlight = { up: up.edges, down: down.edges, nodes: new Set([...up.hops.keys(), ...down.hops.keys()]) };
    } else {
      seeds = model.tasks.filter((t) => !allowed || allowed.has(t.id)).slice(-NEWEST).map((t) => t.id);
      if (!seeds.length) seeds = [...model.nodes.keys()].filter((id) => !allowed || allowed.has(id)).slice(0, NEWEST);
    }
    for (const s of seeds) {
      merge(walk(model, s, "up", depth, allowed).hops);
      merge(walk(model, s, "down", depth, allowed).hops);
    }
    // Every visible task inside the depth shows all it read and wrote (its context); the tasks at the
    // edge of the depth show only what links them to the rest.
    for (const [id, h] of [...hops]) {
      if (model.nodes.get(id).kind !== "task" || h >= depth) continue;
      for (const i of [...(model.inE.get(id) || []), ...(model.outE.get(id) || [])]) {
        const e = model.edges[i];
        const other = e.source === id ? e.target : e.source;
        if ((!allowed || allowed.has(other)) && !hops.has(other)) hops.set(other, h + 0.5);
      }
    }
    return { hops, highlight, focus, allowed, seeds };
  }

  /** Cards (folded groups or single nodes) and the deduplicated edges between them. */
  function fold(model, view) {
    const rep = new Map();   // node id -> card id
    const cards = new Map();
    const addCard = (id, members, fold) => {
      const first = model.nodes.get(members[0]);
      const card = { id, members, fold, node: first, hops: Math.min(...members.map((m) => view.hops.get(m))) };
      cards.set(id, card);
      for (const m of members) rep.set(m, id);
      return card;
    };
    const byName = new Map();
    for (const id of view.hops.keys()) {
      const n = model.nodes.get(id);
      if (n.kind !== "task" || id === view.focus) continue;
      const name = n.label ?? n.task?.name ?? "";
      const group = byName.get(name);
      if (group) group.push(id); else byName.set(name, [id]);
    }
    for (const [name, members] of byName) {
      const fid = `fold:task:${name}`;
      if (members.length >= FOLD_TASKS && !state.expanded.has(fid)) addCard(fid, members, "task");
    }
    for (const id of view.hops.keys()) if (!rep.has(id) && model.nodes.get(id).kind === "task") addCard(id, [id], null);
    // Data of one kind fold together when the same cards wrote them (or, never written here, when
    // the same cards read them): the outputs of "train ×120" become one "118 model files".
    const bySig = new Map();
    for (const id of view.hops.keys()) {
      if (rep.has(id)) continue;
      const n = model.nodes.get(id);
      if (id === view.focus) { addCard(id, [id], null); continue; }
      const sig = new Set();
      for (const i of model.inE.get(id) || []) { const s = rep.get(model.edges[i].source); if (s) sig.add(`<${s}`); }
      if (!sig.size) for (const i of model.outE.get(id) || []) { const t = rep.get(model.edges[i].target); if (t) sig.add(`>${t}`); }
      const key = `fold:data:${styleKind(n)}|${[...sig].sort().join("|")}`;
      const group = bySig.get(key);
      if (group) group.push(id); else bySig.set(key, [id]);
    }
    for (const [key, members] of bySig) {
      if (members.length >= FOLD_DATA && !state.expanded.has(key)) addCard(key, members, "data");
      else for (const m of members) addCard(m, [m], null);
    }
    // Cut a view too large to draw, keeping what is closest to the focus (or the newest tasks).
    let cut = 0;
    if (cards.size > MAX_CARDS) {
      const order = [...cards.values()].sort((a, b) => a.hops - b.hops);
      for (const c of order.slice(MAX_CARDS)) { cards.delete(c.id); for (const m of c.members) rep.delete(m); }
      cut = order.length - MAX_CARDS;
    }
    const links = new Map();
    const hl = view.highlight;
    for (const [id, cid] of rep) {
      for (const i of model.outE.get(id) || []) {
        const e = model.edges[i];
        const tid = rep.get(e.target);
        if (!tid || tid === cid) continue;
        const key = `${cid}\0${tid}`;
        let link = links.get(key);
        if (!link) {
          link = { source: cid, target: tid, relation: e.relation, up: false, down: false, edges: [], labels: new Set() };
          links.set(key, link);
        }
        link.edges.push(i);
        if (hl?.up.has(i)) link.up = true;
        if (hl?.down.has(i)) link.down = true;
        const dataNode = model.nodes.get(e.relation === "input" ? e.source : e.target);
        if (e.version_num != null) link.labels.add(`v${e.version_num}`);
        else if ((dataNode?.generations?.length ?? 0) > 1 && e.generation != null) link.labels.add(`gen ${e.generation}`);
      }
    }
    return { cards, links: [...links.values()], cut };
  }

  // -- layout (a port of the static export's Python layout) ----------------------------------------

  function components(keys, pairs) {
    const parent = new Map(keys.map((k) => [k, k]));
    const find = (k) => { while (parent.get(k) !== k) { parent.set(k, parent.get(parent.get(k))); k = parent.get(k); } return k; };
    for (const [a, b] of pairs) { const ra = find(a), rb = find(b); if (ra !== rb) parent.set(rb, ra); }
    const groups = new Map();
    for (const k of keys) { const r = find(k); if (!groups.has(r)) groups.set(r, []); groups.get(r).push(k); }
    return [...groups.values()];
  }

  function backEdges(nodes, succ) {
    const st = new Map(), back = new Set();
    const targets = new Set();
    for (const n of nodes) for (const c of succ.get(n) || []) targets.add(c);
    // Sources first: a cycle is entered where the flow enters it.
    const roots = [...nodes.filter((n) => !targets.has(n)), ...nodes.filter((n) => targets.has(n))];
    for (const root of roots) {
      if (st.has(root)) continue;
      st.set(root, 1);
      const stack = [[root, succ.get(root) || [], 0]];
      while (stack.length) {
        const top = stack[stack.length - 1];
        if (top[2] < top[1].length) {
          const child = top[1][top[2]++];
          const seen = st.get(child);
          if (seen === undefined) { st.set(child, 1); stack.push([child, succ.get(child) || [], 0]); }
          else if (seen === 1) back.add(`${top[0]}\0${child}`);
        } else { st.set(top[0], 2); stack.pop(); }
      }
    }
    return back;
  }

  function layers(nodes, succ, pred) {
    const indeg = new Map(nodes.map((n) => [n, (pred.get(n) || []).length]));
    const queue = nodes.filter((n) => indeg.get(n) === 0);
    const layer = new Map(nodes.map((n) => [n, 0]));
    for (let i = 0; i < queue.length; i++) {
      const n = queue[i];
      for (const c of succ.get(n) || []) {
        layer.set(c, Math.max(layer.get(c), layer.get(n) + 1));
        indeg.set(c, indeg.get(c) - 1);
        if (indeg.get(c) === 0) queue.push(c);
      }
    }
    // Sources sit right next to their first consumer.
    for (const n of nodes) {
      const s = succ.get(n) || [];
      if (!(pred.get(n) || []).length && s.length) layer.set(n, Math.max(layer.get(n), Math.min(...s.map((c) => layer.get(c))) - 1));
    }
    const low = Math.min(...layer.values());
    for (const n of nodes) layer.set(n, layer.get(n) - low);
    return layer;
  }

  function order(rows, succ, pred) {
    const pos = new Map();
    const place = (row) => { const mid = (row.length - 1) / 2; row.forEach((k, i) => pos.set(k, i - mid)); };
    rows.forEach(place);
    for (let sweep = 0; sweep < SWEEPS; sweep++) {
      const downward = sweep % 2 === 0;
      const seq = downward ? rows.slice(1) : rows.slice(0, -1).reverse();
      const [main, other] = downward ? [pred, succ] : [succ, pred];
      for (const row of seq) {
        const bary = new Map();
        for (const k of row) {
          const m = (main.get(k) || []).map((n) => pos.get(n)), o = (other.get(k) || []).map((n) => pos.get(n));
          const near = [...m, ...m, ...o];
          bary.set(k, near.length ? near.reduce((a, b) => a + b, 0) / near.length : pos.get(k));
        }
        row.sort((a, b) => bary.get(a) - bary.get(b) || pos.get(a) - pos.get(b));
        place(row);
      }
    }
  }

  /** Top-left corners of every card, lanes for long edges, the canvas size. */
  function layout(keys, pairs) {
    const succ = new Map();
    for (const [a, b] of pairs) { if (!succ.has(a)) succ.set(a, []); succ.get(a).push(b); }
    const positions = new Map(), routes = new Map(), backAll = new Set();
    let top = MARGIN, width = 0, budget = MAX_PLACEHOLDERS;
    const comps = components(keys, pairs);
    comps.sort((a, b) => b.length - a.length);  // the big picture first
    for (const comp of comps) {
      const back = backEdges(comp, succ);
      back.forEach((b) => backAll.add(b));
      const dsucc = new Map(), dpred = new Map();
      const add = (m, a, b) => { if (!m.has(a)) m.set(a, []); m.get(a).push(b); };
      for (const n of comp) for (const c of succ.get(n) || []) {
        const [a, b] = back.has(`${n}\0${c}`) ? [c, n] : [n, c];
        add(dsucc, a, b); add(dpred, b, a);
      }
      const layer = layers(comp, dsucc, dpred);
      const rows = Array.from({ length: Math.max(...layer.values()) + 1 }, () => []);
      for (const n of comp) rows[layer.get(n)].push(n);
      // Placeholders along the long forward edges keep a lane free for them. The long edges of one
      // source share one lane that branches off at each target: a hub draws one line, not a ribbon.
      const longBySource = new Map();
      for (const a of comp) for (const b of succ.get(a) || []) {
        if (!back.has(`${a}\0${b}`) && layer.get(b) - layer.get(a) > 1) add(longBySource, a, b);
      }
      const reach = (a) => Math.max(...longBySource.get(a).map((b) => layer.get(b)));
      const needed = [...longBySource.keys()].reduce((s, a) => s + reach(a) - layer.get(a) - 1, 0);
      let osucc = dsucc, opred = dpred;
      const chains = new Map();
      if (longBySource.size && needed <= budget) {
        budget -= needed;
        osucc = new Map(); opred = new Map();
        for (const [a, cs] of dsucc) for (const b of cs) {
          if (!(longBySource.get(a) || []).includes(b)) { add(osucc, a, b); add(opred, b, a); }
        }
        for (const [a, targets] of longBySource) {
          const lane = [];
          for (let i = layer.get(a) + 1; i < reach(a); i++) { const d = `\0${a}\0${i}`; lane.push(d); rows[i].push(d); }
          [a, ...lane].forEach((u, i, path) => { if (i) { add(osucc, path[i - 1], u); add(opred, u, path[i - 1]); } });
          for (const b of targets) {
            const chain = lane.slice(0, layer.get(b) - layer.get(a) - 1);
            chains.set(`${a}\0${b}`, chain);
            add(osucc, chain[chain.length - 1], b); add(opred, b, chain[chain.length - 1]);
          }
        }
      }
      order(rows, osucc, opred);
      const size = (k) => (k.startsWith("\0") ? PLACEHOLDER_H : CARD_H);
      const heights = rows.map((r) => r.reduce((s, k) => s + size(k), 0) + V_GAP * (r.length - 1));
      const tallest = Math.max(...heights);
      const spots = new Map();
      rows.forEach((row, col) => {
        let y = top + (tallest - heights[col]) / 2;
        for (const n of row) { spots.set(n, [MARGIN + col * (CARD_W + H_GAP), y]); y += size(n) + V_GAP; }
      });
      for (const n of comp) positions.set(n, spots.get(n));
      for (const [key, chain] of chains) routes.set(key, chain.map((d) => [spots.get(d)[0], spots.get(d)[1] + PLACEHOLDER_H / 2]));
      width = Math.max(width, MARGIN * 2 + rows.length * (CARD_W + H_GAP) - H_GAP);
      top += tallest + COMPONENT_GAP;
    }
    const height = keys.length ? top - COMPONENT_GAP + MARGIN : MARGIN * 2;
    return { positions, routes, back: backAll, backIn: new Map(), width: Math.max(width, MARGIN * 2), height };
  }

  // -- drawing --------------------------------------------------------------------------------------

  function cardText(card) {
    const n = card.node;
    const model = state.model;
    if (card.fold === "task") {
      const failed = card.members.filter((m) => isFailed(model.nodes.get(m))).length;
      const running = card.members.filter((m) => model.nodes.get(m).task?.status === "running").length;
      const ok = card.members.length - failed - running;
      const parts = [failed && `${failed} failed`, running && `${running} running`, ok && `${ok} ok`].filter(Boolean);
      return { title: `${n.label} ×${card.members.length}`, full: `${n.label} ×${card.members.length}${failed ? `, ${failed} failed` : ""}`,
        description: parts.join(" · "), footer: "Tasks · click to expand", failed };
    }
    if (card.fold === "data") {
      const kind = styleKind(n);
      const paths = card.members.map((m) => model.nodes.get(m).path).filter(Boolean);
      let prefix = paths[0] ?? "";
      for (const p of paths) while (!p.startsWith(prefix)) prefix = prefix.slice(0, -1);
      return { title: `${card.members.length} ${PLURALS[kind] ?? "nodes"}`,
        description: prefix ? clipLeft(prefix + "…", 28) : card.members.slice(0, 3).join(", "),
        // The title says the kind and the count: the footer only has room for the hint (26 characters).
        footer: "click to expand", failed: 0 };
    }
    let description = n.description || "";
    if ((!n.card || !n.card.description) && !n.task && n.path) description = clipLeft(n.path, 28);
    if (n.kind === "task" && !n.task && !n.card?.description) description = "not recorded here";
    let footer = KIND_NAMES[styleKind(n)] ?? n.kind;
    if (n.task) {
      const runs = n.task.runs?.length ?? 0;
      footer += ` ${n.task.id}` + (runs > 1 ? ` · ${runs} runs` : "");
    } else if (n.kind === "project" && n.versions?.length) {
      footer += " · " + n.versions.map((v) => `v${v.version_num ?? v.version_id}`).join(", ");
    } else if (n.external_id != null) footer += ` ${n.external_id}`;
    return { title: n.label ?? n.id, description, footer, failed: isFailed(n) ? 1 : 0 };
  }

  function drawCard(card, x, y, view) {
    const n = card.node;
    const style = styleKind(n);
    const [color, bg] = COLORS[style] ?? ["#475569", "#e2e8f0"];
    let iconColor = color, iconBg = bg;
    if (!card.fold && n.card?.icon_color && n.card?.icon_bg_color) [iconColor, iconBg] = [n.card.icon_color, n.card.icon_bg_color];
    const text = cardText(card);
    const failed = text.failed > 0;
    const stroke = failed ? "#dc2626" : color;
    const cls = ["card", `k-${style}`];
    if (failed) cls.push("failed");
    if (card.fold) cls.push("fold");
    if (view.focus && card.id === view.focus) cls.push("focus");
    if (view.highlight && !card.members.some((m) => view.highlight.nodes.has(m))) cls.push("dim");
    if (state.selected === card.id) cls.push("selected");
    const g = svg("g", { class: cls.join(" "), transform: `translate(${x},${y})`, "data-card": card.id });
    let tip = `${text.full ?? text.title}\n${text.description}\n${card.fold ? `${card.members.length} nodes` : n.id}`;
    if (n.task?.command && !card.fold) tip += `\n${n.task.command}`;
    g.append(svg("title", { text: tip }));
    if (card.fold) {
      g.append(svg("rect", { class: "stack", x: 8, y: 8, width: CARD_W, height: CARD_H, rx: 10, stroke }));
      g.append(svg("rect", { class: "stack", x: 4, y: 4, width: CARD_W, height: CARD_H, rx: 10, stroke }));
    }
    g.append(
      svg("rect", { class: "bg", width: CARD_W, height: CARD_H, rx: 10, stroke }),
      svg("path", { d: `M10 0h-4a6 6 0 0 0-6 6v${CARD_H - 12}a6 6 0 0 0 6 6h4z`, fill: stroke }),
      svg("circle", { cx: 38, cy: CARD_H / 2, r: 19, fill: iconBg }),
      svg("path", { transform: `translate(26,${CARD_H / 2 - 12})`, fill: iconColor, "fill-rule": "evenodd", d: ICONS[style] ?? ICONS.file }),
      svg("text", { class: "t", x: 68, y: 25, text: clip(text.title, 22) }),
      svg("text", { class: "d", x: 68, y: 44, text: clip(text.description, 28) }),
      svg("text", { class: "k", x: 68, y: 66, text: clip(text.footer, card.fold ? 30 : 24) }),
    );
    const link = card.fold ? null : instanceLink(n.card);
    if (link) {
      const a = svg("a", { href: link, target: "_blank", rel: "noopener noreferrer" },
        svg("text", { class: "l", x: CARD_W - 12, y: 66, "text-anchor": "end", text: `${clip(n.card.url_title || "open", 14)} ↗` }));
      g.append(a);
    }
    const status = n.task?.status;
    if (failed || (!card.fold && status === "running")) {
      const label = card.fold ? `${text.failed} FAILED` : failed ? "FAILED" : "RUNNING";
      const w = Math.max(66, label.length * 7 + 16);
      g.append(
        svg("rect", { x: CARD_W - w - 8, y: -9, width: w, height: 18, rx: 9, fill: failed ? "#dc2626" : "#d97706" }),
        svg("text", { class: "b", x: CARD_W - 8 - w / 2, y: 4, "text-anchor": "middle", text: label }),
      );
    }
    return g;
  }

  /** A polyline with rounded corners (radius r) as an SVG path. */
  function rounded(points, r) {
    let d = `M${points[0][0]} ${points[0][1]}`;
    for (let i = 1; i < points.length - 1; i++) {
      const [px, py] = points[i - 1], [x, y] = points[i], [nx, ny] = points[i + 1];
      const a = Math.min(r, Math.hypot(x - px, y - py) / 2), b = Math.min(r, Math.hypot(nx - x, ny - y) / 2);
      const ux = Math.sign(x - px), uy = Math.sign(y - py), vx = Math.sign(nx - x), vy = Math.sign(ny - y);
      d += ` L${x - ux * a} ${y - uy * a} Q${x} ${y} ${x + vx * b} ${y + vy * b}`;
    }
    const [lx, ly] = points[points.length - 1];
    return `${d} L${lx} ${ly}`;
  }

  function drawEdge(link, lay) {
    const [sx, sy] = lay.positions.get(link.source), [tx, ty] = lay.positions.get(link.target);
    let d, mx, my;
    const back = lay.back.has(`${link.source}\0${link.target}`) || tx <= sx;
    if (back) {
      // Against the flow: out of the source's left side into the gap between the columns, then
      // along the gap under the target into its bottom; both gaps are free of cards.
      // Several into one target (a file rewritten again and again) take side-by-side lanes.
      const n = lay.backIn.get(link.target) ?? 0;
      lay.backIn.set(link.target, n + 1);
      const gx = sx - H_GAP / 2 + ((n % 4) - 1.5) * 8, y1 = sy + CARD_H * 0.75 - (n % 3) * 8;
      const yb = ty + CARD_H + V_GAP / 2 + ((n % 3) - 1) * 5, x2 = tx + CARD_W / 2 + ((n % 5) - 2) * 12;
      d = rounded([[sx, y1], [gx, y1], [gx, yb], [x2, yb], [x2, ty + CARD_H + 4]], 10);
      [mx, my] = [sx - 6, y1 - 4];  // by its source: the lanes into one target run together
    } else {
      const pts = [[sx + CARD_W, sy + CARD_H / 2]];
      for (const [lx, ly] of lay.routes.get(`${link.source}\0${link.target}`) || []) pts.push([lx, ly], [lx + CARD_W, ly]);
      pts.push([tx - 4, ty + CARD_H / 2]);
      d = `M${pts[0][0]} ${pts[0][1]}`;
      for (let i = 1; i < pts.length; i++) {
        const [x1, y1] = pts[i - 1], [x2, y2] = pts[i];
        if (i % 2 === 0) d += ` L${x2} ${y2}`;
        else { const bend = Math.max(30, (x2 - x1) / 2); d += ` C${x1 + bend} ${y1} ${x2 - bend} ${y2} ${x2} ${y2}`; }
      }
      // The label sits by the arrowhead: edges fanning out of one card share their start, not their end.
      [mx, my] = [tx - 10, ty + CARD_H / 2 - 7];
    }
    const cls = ["e", link.relation];
    if (link.up) cls.push("up");
    if (link.down) cls.push("down");
    if (state.view.highlight && !link.up && !link.down) cls.push("dim");
    const marker = link.up ? "arrow-up" : link.down ? "arrow-down" : "arrow";
    const out = [svg("path", { class: cls.join(" "), d, "marker-end": `url(#${marker})` })];
    // A back edge is labelled only when it is the only one into its target (else the labels pile up).
    if (link.labels.size === 1 && link.edges.length === 1 && (!back || lay.backTotal.get(link.target) === 1)) {
      out.push(svg("text", { class: "v", x: mx, y: my, "text-anchor": "end", text: [...link.labels][0] }));
    }
    return out;
  }

  function render() {
    const model = state.model;
    const view = computeView(model);
    state.view = view;
    const { cards, links, cut } = fold(model, view);
    state.cards = cards;
    // In time order, so that of a cycle (a task that rewrites what it read) the later edge is the one
    // drawn against the flow.
    const time = (c) => c.members.reduce((t, m) => {
      const n = model.nodes.get(m);
      const own = n.task?.started_at ?? n.generations?.[0]?.time ?? "";
      return own && (!t || own < t) ? own : t;
    }, "");
    const keys = [...cards.values()].map((c) => [time(c), c.id]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((p) => p[1]);
    const pairs = [...new Set(links.map((l) => `${l.source}\0${l.target}`))].map((k) => k.split("\0"));
    const lay = layout(keys, pairs);
    state.lay = lay;
    lay.backTotal = new Map();
    for (const l of links) {
      if (lay.back.has(`${l.source}\0${l.target}`) || lay.positions.get(l.target)[0] <= lay.positions.get(l.source)[0]) {
        lay.backTotal.set(l.target, (lay.backTotal.get(l.target) ?? 0) + 1);
      }
    }
    const edgesG = $("edges"), cardsG = $("cards");
    const edgeNodes = [], cardNodes = [];
    for (const link of links) edgeNodes.push(...drawEdge(link, lay));
    for (const card of cards.values()) { const [x, y] = lay.positions.get(card.id); cardNodes.push(drawCard(card, x, y, view)); }
    edgesG.replaceChildren(...edgeNodes);
    cardsG.replaceChildren(...cardNodes);
    $("empty").hidden = cards.size > 0;
    summary(view, cards, cut);
  }

  function summary(view, cards, cut) {
    const model = state.model;
    const tasks = model.tasks.filter((t) => !view.allowed || view.allowed.has(t.id));
    const failed = tasks.filter(isFailed).length;
    const data = view.allowed ? [...view.allowed].filter((id) => model.nodes.get(id)?.kind !== "task").length
      : model.nodes.size - model.tasks.length;
    const around = view.focus ? `around ${view.focus}` : `newest ${Math.min(NEWEST, tasks.length)} tasks`;
    const depth = state.depth === Infinity ? "all" : state.depth;
    $("summary").textContent = `${plural(tasks.length, "task")}${failed ? ` (${failed.toLocaleString("en")} failed)` : ""}`
      + ` · ${plural(data, "data node")} · showing ${plural(cards.size, "card")}, ${around}, depth ${depth}`
      + (cut ? ` · ${cut.toLocaleString("en")} more cut: lower the depth or search` : "");
  }

  // -- pan and zoom ---------------------------------------------------------------------------------

  const camera = { x: 0, y: 0, k: 1 };
  function applyCamera() {
    $("viewport").setAttribute("transform", `translate(${camera.x},${camera.y}) scale(${camera.k})`);
    $("graph").classList.toggle("far", camera.k < 0.45);
  }
  function zoomAt(px, py, factor) {
    const k = Math.min(3, Math.max(0.03, camera.k * factor));
    camera.x = px - ((px - camera.x) * k) / camera.k;
    camera.y = py - ((py - camera.y) * k) / camera.k;
    camera.k = k;
    applyCamera();
  }
  function fit() {
    const lay = state.lay, box = $("graph").getBoundingClientRect();
    if (!lay || !box.width) return;
    const k = Math.min(1.2, Math.max(0.03, Math.min(box.width / lay.width, box.height / (lay.height + 20)) * 0.96));
    camera.k = k;
    camera.x = (box.width - lay.width * k) / 2;
    camera.y = Math.max(0, (box.height - lay.height * k) / 2);
    applyCamera();
  }
  /**
   * Show the view: fit it when it stays readable; else, at a readable size, centre on the focused
   * card, or show the end of the flow (the newest results, what led to them on the left). `f` fits.
   */
  function frame() {
    const lay = state.lay, box = $("graph").getBoundingClientRect();
    if (!lay || !box.width || !state.cards) return;
    if (Math.min(box.width / lay.width, box.height / lay.height) >= 0.55) { fit(); return; }
    const k = camera.k = 0.8;
    const card = state.view.focus && [...state.cards.values()].find((c) => c.members.includes(state.view.focus));
    if (card) {
      const [x, y] = lay.positions.get(card.id);
      camera.x = box.width / 2 - (x + CARD_W / 2) * k;
      camera.y = box.height / 2 - (y + CARD_H / 2) * k;
    } else {
      camera.x = box.width - lay.width * k;
      camera.y = (box.height - lay.height * k) / 2;
    }
    applyCamera();
  }

  function setupCanvas() {
    const root = $("graph");
    let drag = null;
    root.addEventListener("wheel", (e) => {
      e.preventDefault();
      const box = root.getBoundingClientRect();
      zoomAt(e.clientX - box.left, e.clientY - box.top, Math.exp(-e.deltaY * (e.deltaMode ? 0.05 : 0.0015)));
    }, { passive: false });
    root.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 || e.target.closest("a")) return;
      drag = { x: e.clientX, y: e.clientY, cx: camera.x, cy: camera.y, moved: false, id: e.pointerId };
    });
    root.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) < 4) return;
      if (!drag.moved) { drag.moved = true; root.setPointerCapture(drag.id); root.classList.add("panning"); }
      camera.x = drag.cx + dx; camera.y = drag.cy + dy;
      applyCamera();
    });
    const end = (e) => {
      if (!drag) return;
      const wasClick = !drag.moved;
      drag = null;
      root.classList.remove("panning");
      if (wasClick && e.type === "pointerup") onCanvasClick(e);
    };
    root.addEventListener("pointerup", end);
    root.addEventListener("pointercancel", end);
  }

  function onCanvasClick(e) {
    const g = e.target.closest("[data-card]");
    if (!g) return;
    const card = state.cards.get(g.getAttribute("data-card"));
    if (!card) return;
    if (!card.fold) focusNode(card.id);
    else if (card.members.length > EXPAND_MAX) showDetails(card);  // its members, and "Expand all"
    else expand(card);
  }

  /** Open a fold: its members become cards, framed where they now are. */
  function expand(card) {
    state.expanded.add(card.id);
    state.selected = card.id;
    render();
    showDetails(card);
    const spots = card.members.map((m) => state.lay.positions.get(m)).filter(Boolean);
    if (!spots.length) return;
    const box = $("graph").getBoundingClientRect();
    const x0 = Math.min(...spots.map((p) => p[0])), x1 = Math.max(...spots.map((p) => p[0])) + CARD_W;
    const y0 = Math.min(...spots.map((p) => p[1])), y1 = Math.max(...spots.map((p) => p[1])) + CARD_H;
    const k = Math.min(1, Math.max(0.3, Math.min(box.width / (x1 - x0 + 2 * H_GAP), box.height / (y1 - y0 + 2 * V_GAP))));
    camera.k = k;
    camera.x = box.width / 2 - ((x0 + x1) / 2) * k;
    camera.y = Math.min(box.height / 2 - ((y0 + y1) / 2) * k, V_GAP - y0 * k);
    applyCamera();
  }

  // -- focus, hash, search --------------------------------------------------------------------------

  /** Focus `id`: through the URL (#node=...), so that links, reloads and Back all work the same. */
  function focusNode(id) {
    const hash = `#node=${hashId(id)}`;
    if (location.hash !== hash) location.hash = hash;
    else applyHash();
  }
  function clearFocus() {
    if (location.hash) history.pushState(null, "", location.pathname + location.search);
    applyHash();
  }
  function applyHash() {
    const m = /^#node=(.+)$/.exec(location.hash);
    let id = null;
    if (m) { try { id = decodeURIComponent(m[1]); } catch { id = m[1]; } }
    if (id && state.model && !state.model.nodes.has(id)) { notice(`No node ${id} in this graph.`); id = null; }
    state.focus = id;
    state.selected = id;
    if (!state.model) return;
    render();
    if (id) showDetails(state.cards.get(id) ?? { id, members: [id], fold: null, node: state.model.nodes.get(id) });
    else hideDetails();
    frame();  // after the details panel took its width
  }

  function notice(text) {
    const box = $("notice");
    box.textContent = text;
    box.hidden = !text;
    clearTimeout(notice.timer);
    if (text) notice.timer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  function search(query) {
    const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
    if (!terms.length || !state.model) return [];
    const allowed = state.view?.allowed;
    const hits = [];
    for (const [id, text] of state.model.haystack) {
      if (allowed && !allowed.has(id)) continue;
      if (!terms.every((t) => text.includes(t))) continue;
      const n = state.model.nodes.get(id);
      const label = String(n.label ?? "").toLowerCase();
      const q = terms.join(" ");
      const rank = id.toLowerCase() === q ? 0 : label === q ? 1 : label.startsWith(terms[0]) ? 2 : 3;
      hits.push([rank, n.kind === "task" ? -(n.task?.id ?? 0) : 0, n]);
      if (hits.length >= 2000) break;
    }
    hits.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    return hits.slice(0, 20).map((h) => h[2]);
  }

  function setupSearch() {
    const input = $("search"), list = $("results");
    let results = [], active = 0;
    const show = () => {
      list.replaceChildren(...results.map((n, i) => el("li", {
        class: i === active ? "active" : null, role: "option", "data-id": n.id,
        onpointerdown: (e) => { e.preventDefault(); choose(i); },
      }, iconBadge(n), el("span", { class: "r-label", text: n.label ?? n.id }),
        el("span", { class: "r-id", text: n.path && n.path !== n.label ? n.path : n.id }))));
      list.hidden = !results.length;
    };
    const choose = (i) => {
      const n = results[i];
      if (!n) return;
      list.hidden = true;
      input.blur();
      focusNode(n.id);
    };
    input.addEventListener("input", () => { results = search(input.value); active = 0; show(); });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        if (!results.length) results = search(input.value);
        if (results.length) choose(active); else notice(`Nothing matches “${input.value}”.`);
      } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        active = (active + (e.key === "ArrowDown" ? 1 : results.length - 1)) % Math.max(1, results.length);
        show();
      } else if (e.key === "Escape") {
        e.preventDefault();
        if (input.value) { input.value = ""; results = []; show(); } else { input.blur(); clearFocus(); }
      }
    });
    input.addEventListener("blur", () => { list.hidden = true; });
    input.addEventListener("focus", () => { if (results.length) list.hidden = false; });
  }

  function iconBadge(n) {
    const style = styleKind(n);
    const [color, bg] = COLORS[style] ?? COLORS.file;
    return svg("svg", { class: "ico", viewBox: "0 0 32 32", "aria-hidden": "true" },
      svg("circle", { cx: 16, cy: 16, r: 16, fill: isFailed(n) ? "#fee2e2" : bg }),
      svg("path", { transform: "translate(4,4)", fill: isFailed(n) ? "#dc2626" : color, "fill-rule": "evenodd", d: ICONS[style] ?? ICONS.file }));
  }

  // -- details panel --------------------------------------------------------------------------------

  function hideDetails() { $("details").hidden = true; state.selected = null; }

  function nodeButton(id, extra) {
    const n = state.model.nodes.get(id);
    const label = `${n?.label ?? id}${n?.task ? ` #${n.task.id}` : ""}${extra ? ` ${extra}` : ""}`;
    return el("button", { class: `node-link${n && isFailed(n) ? " failed" : ""}`, type: "button", title: id,
      onclick: () => focusNode(id) }, n ? iconBadge(n) : null, el("span", { text: label }));
  }
  function copyButton(label, text) {
    const b = el("button", { type: "button", class: "copy", text: label, title: text });
    b.addEventListener("click", async () => {
      try { await navigator.clipboard.writeText(text); } catch {
        const area = el("textarea", { class: "offscreen" });
        area.value = text;
        document.body.append(area);
        area.select();
        document.execCommand("copy");
        area.remove();
      }
      b.textContent = "Copied";
      setTimeout(() => { b.textContent = label; }, 1200);
    });
    return b;
  }
  function field(dl, name, value, cls) {
    if (value == null || value === "") return;
    dl.append(el("dt", { text: name }), el("dd", { class: cls }, value instanceof Node ? value : String(value)));
  }
  const section = (title, ...children) => el("section", {}, el("h3", { text: title }), ...children);
  const statusTag = (status) => el("span", { class: `status s-${status}`, text: status });
  const errorText = (err) => (err ? `${err.type ?? "Error"}: ${err.message ?? ""}` : null);

  function paramsTable(params) {
    const entries = Object.entries(params || {});
    if (!entries.length) return null;
    return el("table", { class: "params" }, ...entries.map(([k, v]) =>
      el("tr", {}, el("th", { text: k }), el("td", { text: typeof v === "string" ? v : JSON.stringify(v) }))));
  }

  /**
   * A task's runs nested by parent_run_id. Sibling runs of one name (epochs, retries, shards) from
   * FOLD_TASKS on fold into one "epoch ×120, 14 failed" line that opens on a click.
   */
  function runsTree(runs, taskError) {
    const children = new Map();
    const ids = new Set(runs.map((r) => r.run_id));
    for (const r of runs) {
      const parent = r.parent_run_id && ids.has(r.parent_run_id) ? r.parent_run_id : null;
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(r);
    }
    let budget = 500;
    const item = (r) => {
      const head = el("div", { class: "run-head" }, statusTag(r.status), el("strong", { text: r.name }),
        el("span", { class: "muted", title: r.run_id, text: ` ${duration(runSeconds(r))} · run ${shortId(r.run_id)}` }));
      const body = [head, paramsTable(r.params)];
      // The task's error is shown in full above it: a run that failed with that same error says so.
      if (r.error && errorText(r.error) === taskError) body.push(el("div", { class: "muted", text: "failed with the task's error (above)" }));
      else if (r.error) body.push(el("pre", { class: "error", text: errorText(r.error) }));
      const io = [...(r.inputs || []).map((id) => ["←", id]), ...(r.outputs || []).map((id) => ["→", id])];
      if (io.length) body.push(el("div", { class: "io" }, ...io.map(([arrow, id]) => el("span", {}, arrow + " ", nodeButton(id)))));
      if (children.has(r.run_id)) body.push(branch(r.run_id));
      return el("li", { class: r.status === "failed" ? "failed" : null }, ...body);
    };
    const branch = (parent) => {
      const groups = new Map();
      for (const r of children.get(parent) || []) {
        if (!groups.has(r.name)) groups.set(r.name, []);
        groups.get(r.name).push(r);
      }
      const list = el("ul", { class: "runs" });
      for (const [name, group] of groups) {
        if (budget <= 0) break;
        if (group.length < FOLD_TASKS) { for (const r of group) if (budget-- > 0) list.append(item(r)); continue; }
        const failed = group.filter((r) => r.status === "failed").length;
        const inner = el("ul", { class: "runs" });
        for (const r of group) if (budget-- > 0) inner.append(item(r));
        list.append(el("li", { class: failed ? "failed" : null }, el("details", {},
          el("summary", {}, statusTag(failed ? "failed" : group.some((r) => r.status === "running") ? "running" : "ok"),
            el("strong", { text: `${name} ×${group.length}${failed ? `, ${failed} failed` : ""}` })), inner)));
      }
      return list;
    };
    const tree = branch(null);
    if (budget < 0) tree.append(el("li", { class: "muted", text: `… more runs than shown (${runs.length} in all)` }));
    return tree;
  }

  /** A list of edges by the node at their data end (or, `taskEnd`, at their task end). */
  function edgeList(ids, label, taskEnd = false) {
    const model = state.model;
    if (!ids.length) return null;
    return section(label, el("ul", { class: "plain" }, ...ids.slice(0, 300).map((i) => {
      const e = model.edges[i];
      const other = (e.relation === "input") !== taskEnd ? e.source : e.target;
      const gens = model.nodes.get(other)?.generations?.length ?? 0;
      const extra = e.version_num != null ? `v${e.version_num}` : gens > 1 && e.generation != null ? `gen ${e.generation}` : "";
      return el("li", {}, nodeButton(other, extra), e.count > 1 ? el("span", { class: "muted", text: ` ×${e.count}` }) : null);
    })), ids.length > 300 ? el("p", { class: "muted", text: `… ${ids.length - 300} more` }) : null);
  }

  function showDetails(card) {
    const panel = $("details"), model = state.model;
    if (!card || !model) { hideDetails(); return; }
    const n = card.node;
    const body = [];
    const head = el("header", {}, iconBadge(n), el("div", {},
      el("h2", { text: card.fold ? cardText(card).title : n.label ?? n.id }),
      el("div", { class: "muted", text: card.fold ? `${card.members.length} folded nodes` : n.id })),
    el("button", { type: "button", class: "close", title: "Close (Esc)", text: "×", onclick: hideDetails }));
    body.push(head);
    if (card.fold) {
      const open = state.expanded.has(card.id);
      body.push(el("div", { class: "actions" }, open
        ? el("button", { type: "button", text: "Fold again", onclick: () => { state.expanded.delete(card.id); render(); hideDetails(); } })
        : el("button", { type: "button", text: `Expand all ${card.members.length}`, onclick: () => expand(card) })));
      if (!open && card.members.length > EXPAND_MAX) {
        body.push(el("p", { class: "muted", text: `${card.members.length} cards are a lot to read: pick one below to focus it, or search.` }));
      }
      body.push(section("Members", el("ul", { class: "plain" }, ...card.members.slice(0, 300).map((m) => {
        const node = model.nodes.get(m);
        return el("li", {}, nodeButton(m), node.task ? statusTag(node.task.status) : null);
      })), card.members.length > 300 ? el("p", { class: "muted", text: `… ${card.members.length - 300} more` }) : null));
    } else if (n.task) {
      const t = n.task;
      body.push(el("div", { class: "actions" }, copyButton("Copy id", n.id),
        copyButton("Copy reproduce command", `workflow-trace reproduce ${n.id}`)));
      const dl = el("dl");
      field(dl, "Status", statusTag(t.status));
      field(dl, "Started", localTime(t.started_at));
      field(dl, "Finished", t.finished_at ? localTime(t.finished_at) : null);
      field(dl, "Duration", duration(t.duration_s));
      field(dl, "Host", t.host ? `${t.host}${t.pid != null ? ` (pid ${t.pid})` : ""}` : null);
      field(dl, "Origin", t.origin);
      field(dl, "Command", t.command, "code");
      if (t.git_commit) {
        field(dl, "Git commit", `${t.git_commit}${t.git_dirty ? " (work tree dirty)" : ""}`, "code");
      } else if (t.git_dirty != null) field(dl, "Git", t.git_dirty ? "dirty" : "clean");
      field(dl, "Python", t.python);
      body.push(dl);
      const link = instanceLink(n.card);
      if (link) body.push(el("p", {}, el("a", { href: link, target: "_blank", rel: "noopener noreferrer", text: `${n.card.url_title || "Open on the instance"} ↗` })));
      if (t.error) body.push(section("Error", el("pre", { class: "error full", text: errorText(t.error) })));
      if (t.runs?.length) body.push(section(`Runs (${t.runs.length})`, runsTree(t.runs, errorText(t.error))));
      const ins = (model.inE.get(n.id) || []).filter((i) => model.edges[i].relation === "input");
      const outs = (model.outE.get(n.id) || []).filter((i) => model.edges[i].relation === "output");
      body.push(edgeList(ins, "Inputs"), edgeList(outs, "Outputs"));
    } else {
      body.push(el("div", { class: "actions" }, copyButton("Copy id", n.id)));
      const dl = el("dl");
      field(dl, "Kind", KIND_NAMES[styleKind(n)] ?? n.kind);
      // Only a card's own description: the default one repeats the kind, the versions and the path.
      field(dl, "Description", n.card?.description);
      field(dl, "Path", n.path, "code");
      field(dl, "Id", n.external_id);
      body.push(dl);
      const link = instanceLink(n.card);
      if (link) body.push(el("p", {}, el("a", { href: link, target: "_blank", rel: "noopener noreferrer", text: `${n.card.url_title || "Open on the instance"} ↗` })));
      if (n.kind === "task") {
        // A task known only as another task's input or output (consumes_task, produces_task).
        body.push(el("p", { class: "muted", text: "Not recorded in this store: it is known only as what other tasks read or wrote." }));
        const uses = (ids, rel) => ids.filter((i) => model.edges[i].relation === rel);
        body.push(edgeList(uses(model.outE.get(n.id) || [], "input"), "Read by", true),
          edgeList(uses(model.inE.get(n.id) || [], "output"), "Written by", true));
      } else body.push(generations(n));
      if (n.kind === "project" && n.versions?.length) body.push(versions(n));
    }
    panel.replaceChildren(...body.filter(Boolean));
    panel.hidden = false;
    panel.scrollTop = 0;
  }

  /** One block per generation: when, which task and run produced it (or found), which tasks read it. */
  function generations(n) {
    const model = state.model;
    const gens = n.generations?.length ? n.generations : [{ generation: 1, task_id: null, run_id: null, time: null }];
    const shown = gens.slice(-200).reverse();  // the newest first
    const blocks = shown.map((g) => {
      const readers = (model.readers.get(`${n.id}\0${g.generation}`) || []).map((i) => model.edges[i].target);
      const producer = g.task_id != null
        ? el("div", {}, el("span", { class: "muted", text: "produced by " }), nodeButton(`task:${g.task_id}`),
          g.run_id ? el("span", { class: "muted", title: g.run_id, text: ` run ${shortId(g.run_id)}` }) : null)
        : el("div", { class: "muted", text: "read as found: not produced in this store" });
      return el("li", {},
        el("div", { class: "gen-head" }, el("strong", { text: `gen ${g.generation}` }),
          el("span", { class: "muted", text: g.time ? ` · ${localTime(g.time)}` : "" })),
        producer,
        readers.length ? el("div", {}, el("span", { class: "muted", text: `read by ${readers.length}: ` }),
          ...readers.slice(0, 40).map((r) => nodeButton(r)),
          readers.length > 40 ? el("span", { class: "muted", text: ` … ${readers.length - 40} more` }) : null)
          : el("div", { class: "muted", text: "not read since" }));
    });
    return section(`Generations (${gens.length})`, el("ul", { class: "gens" }, ...blocks),
      gens.length > shown.length ? el("p", { class: "muted", text: `… ${gens.length - shown.length} older generations` }) : null);
  }

  function versions(n) {
    const model = state.model;
    const uses = [...(model.outE.get(n.id) || []), ...(model.inE.get(n.id) || [])].map((i) => model.edges[i]);
    return section("Versions", el("table", { class: "gens" },
      el("tr", {}, ...["version", "written by", "read by"].map((h) => el("th", { text: h }))),
      ...n.versions.map((v) => {
        const mine = uses.filter((e) => e.version_id === v.version_id);
        const by = (rel) => mine.filter((e) => e.relation === rel).map((e) => nodeButton(rel === "input" ? e.target : e.source));
        return el("tr", {}, el("td", { text: `v${v.version_num ?? "?"} (id ${v.version_id})` }),
          el("td", {}, ...by("output")), el("td", {}, ...by("input")));
      })));
  }

  // -- data: offline, or live with polling ----------------------------------------------------------

  function setData(data, { refit }) {
    state.data = data;
    state.model = buildModel(data);
    const scopes = new Set(["workspace", state.scope]);
    // Offline every scope of the file is offered, whichever is shown.
    for (const n of state.full?.nodes ?? data.nodes ?? []) if (n.kind === "project") scopes.add(n.id);
    if (state.focus?.startsWith("task:")) scopes.add(state.focus);
    $("scopes").replaceChildren(...[...scopes].map((s) => el("option", { value: s })));
    $("store").textContent = data.store ? `store ${data.store}` : "";
    document.documentElement.dataset.scope = data.scope || "workspace";  // the scope shown (as resolved)
    if (state.focus && !state.model.nodes.has(state.focus)) {
      notice(`No node ${state.focus} in this graph.`);
      state.focus = state.selected = null;
    }
    render();
    const selected = state.selected && (state.cards.get(state.selected)
      ?? (state.model.nodes.has(state.selected) ? { id: state.selected, members: [state.selected], fold: null, node: state.model.nodes.get(state.selected) } : null));
    if (selected) showDetails(selected); else if (!$("details").hidden) hideDetails();
    if (refit) frame();
  }

  /** GET a JSON answer of our own server ("no-cache": revalidated with its ETag, so cheap). */
  async function getJSON(url) {
    const r = await fetch(url, { cache: "no-cache", headers: { Accept: "application/json" } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw Object.assign(new Error(body.error || `${r.status} ${r.statusText}`), { status: r.status });
    return body;
  }

  async function loadLive(refit) {
    // Answers can arrive out of order (a scope typed while a poll was loading): only the latest counts.
    const ticket = state.loads = (state.loads ?? 0) + 1;
    try {
      const version = await getJSON("/api/version");
      const data = await getJSON(`/api/graph?scope=${encodeURIComponent(state.scope)}`);
      if (ticket !== state.loads) return;
      state.version = version.version;
      setData(data, { refit });
      live(true);
    } catch (err) {
      if (ticket !== state.loads) return;
      if (err.status === 400 && state.data) {
        // A scope the store does not know: say so and stay where we were.
        notice(err.message);
        state.scope = state.data.scope || "workspace";
        $("scope").value = state.scope;
        scopeToUrl();
        live(true);
      } else live(false, String(err.message || err));
    }
  }

  /** Live, the scope is in the address (?scope=...), so that a reload or a shared link keeps it. */
  function scopeToUrl() {
    if (!config.live) return;
    const url = new URL(location.href);
    if (state.scope === "workspace") url.searchParams.delete("scope"); else url.searchParams.set("scope", state.scope);
    history.replaceState(history.state, "", url);
  }

  function live(ok, message) {
    const tag = $("live");
    tag.hidden = false;
    tag.className = ok ? "live ok" : "live down";
    tag.textContent = ok ? "● live" : "● disconnected";
    tag.title = message || "polling the store for new runs";
  }

  function poll() {
    setTimeout(async () => {
      if (!document.hidden) {
        try {
          const v = await getJSON("/api/version");
          if (v.version !== state.version) await loadLive(false); else live(true);
        } catch (err) { live(false, String(err.message || err)); }
      }
      poll();
    }, POLL_MS);
  }

  // -- controls -------------------------------------------------------------------------------------

  function setupControls() {
    $("depth").addEventListener("change", (e) => {
      state.depth = e.target.value === "all" ? Infinity : Number(e.target.value);
      render(); frame();
    });
    $("failed").addEventListener("change", (e) => { state.failedOnly = e.target.checked; render(); frame(); });
    $("fit").addEventListener("click", fit);
    $("home").addEventListener("click", () => { $("search").value = ""; clearFocus(); });
    $("scope").addEventListener("change", (e) => {
      const scope = e.target.value.trim() || "workspace";
      if (!/^(workspace|project:.+|task:\d+)$/.test(scope)) {
        notice("A scope is workspace, project:ID or task:ID.");
        e.target.value = state.scope;
        return;
      }
      if (config.live) {
        state.scope = scope;
        scopeToUrl();
        loadLive(true);
        return;
      }
      const scoped = scopeData(state.full, scope);
      if (!scoped) {
        notice(`No ${scope} in this graph.`);
        e.target.value = state.scope;
        return;
      }
      state.scope = scope;
      setData(scoped, { refit: true });
    });
    document.addEventListener("keydown", (e) => {
      const typing = e.target.closest?.("input, select, textarea");
      if (e.key === "/" && !typing) { e.preventDefault(); $("search").focus(); $("search").select(); }
      else if (e.key === "f" && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) { e.preventDefault(); fit(); }
      else if (e.key === "Escape" && !typing) { $("search").value = ""; clearFocus(); }
    });
    window.addEventListener("hashchange", applyHash);
    window.addEventListener("popstate", applyHash);
  }

  function legend() {
    const items = Object.entries(KIND_NAMES).map(([style, name]) =>
      el("li", {}, iconBadge({ kind: style === "model" ? "file" : style, model_weight: style === "model" }), el("span", { text: name })));
    items.push(el("li", {}, el("span", { class: "swatch failed" }), el("span", { text: "failed" })));
    items.push(el("li", {}, el("span", { class: "swatch up" }), el("span", { text: "upstream" })));
    items.push(el("li", {}, el("span", { class: "swatch down" }), el("span", { text: "downstream" })));
    $("legend").replaceChildren(...items);
  }

  function start() {
    const title = config.title || "Workflow lineage";
    document.title = title;
    setupCanvas();
    setupSearch();
    setupControls();
    legend();
    applyCamera();
    const m = /^#node=(.+)$/.exec(location.hash);
    if (m) { try { state.focus = decodeURIComponent(m[1]); } catch { state.focus = m[1]; } state.selected = state.focus; }
    const ready = () => {
      $("search").disabled = false;
      document.documentElement.dataset.ready = "true";
    };
    const inline = JSON.parse($("wt-data").textContent);
    if (inline) {
      state.full = inline;
      state.scope = inline.scope || "workspace";
      $("scope").value = state.scope;
      setData(inline, { refit: true });
      ready();
    }
    if (config.live) {
      state.scope = new URLSearchParams(location.search).get("scope") || state.scope;
      $("scope").value = state.scope;
      loadLive(!inline).then(() => { ready(); poll(); });
    }
  }

  start();
})();
