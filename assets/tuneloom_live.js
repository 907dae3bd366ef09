/*
 * tuneloom live client.
 *
 * Receives stored events over Socket.IO, buffers them and, once per animation frame, extends
 * the traces of the figures the server built (timeline bars, convergence lines and points)
 * in place: no figure is rebuilt for a batch. A batch that fits the axes as drawn is appended
 * to the traces' arrays and drawn as an overlay of its own shapes (tuneloom_overlay.js), so
 * nothing else is redrawn; one that does not is drawn by one Plotly.extendTraces call, which
 * also gives the axes room to grow.
 * Every figure comes with a "base": the store position it was built at, a stamp also found
 * in the drawn figure's layout.meta, and what the client needs to extend it. The client asks
 * the server to resume after that position and ignores the stream for that figure until the
 * catch-up arrives, then applies events strictly after the figure's mark: nothing is lost and
 * nothing is drawn twice. When a figure cannot be extended in place (aggregated view, new
 * series, too many bars) the client asks the server to rebuild it, at most once a second.
 *
 * The client acknowledges what it handled (at most a few times a second). A tab that fell
 * too far behind gets a gap marker instead of more events and resumes from the store.
 */
(function () {
  "use strict";

  var SEP = "\u0001";
  var L = {
    socket: null,
    config: null,
    connected: false,
    graphs: {},
    token: 0,
    streamPos: 0,
    frameScheduled: false,
    fullRedraws: !!window.tuneloomFullRedraws,  // no overlay: every batch redraws (to compare)
    tick: {timer: null, last: 0},
    ack: {timer: null, sent: 0},
    stats: {
      enabled: !!window.tuneloomMeasure,
      received: 0,
      events: 0,
      applied: {},
      painted: {},
      seen: {},
      duplicates: 0,
      gaps: 0,
      extends: 0,
      overlays: 0,
      settles: 0,
    },
  };
  window.tuneloomLive = L;

  function now() {
    return performance.timeOrigin + performance.now();
  }

  // Set props of a component that is on the page. Stores have no DOM node, so the caller
  // names an element that is on the page exactly when the component is (its graph); the
  // shell's components are always there.
  function setProps(id, props, anchor) {
    var dc = window.dash_clientside;
    if (!dc || !dc.set_props) return;
    if (!document.getElementById(anchor || id)) return;
    dc.set_props(id, props);
  }

  function status(text, cls) {
    setProps("live-status", {children: text, className: "tl-live " + cls});
  }

  // --- connection -------------------------------------------------------------------------

  L.init = function (config) {
    if (!config || !config.enabled || L.socket || typeof io === "undefined") return;
    L.config = config;
    L.streamPos = config.pos || 0;
    var socket = io(config.namespace, {path: config.path});
    L.socket = socket;
    socket.on("connect", function () {
      L.connected = true;
      status("live", "tl-live-on");
      var ids = Object.keys(L.graphs);
      ids.forEach(function (id) { resume(L.graphs[id]); });
      if (!ids.length) socket.emit("resume", {after: L.streamPos, token: "stream"});
    });
    socket.on("disconnect", function () {
      L.connected = false;
      status("reconnecting", "tl-live-off");
    });
    socket.on("events", function (msg) { receive(msg.events, null); });
    socket.on("catchup", function (msg) { receive(msg.events, msg.token); });
    socket.on("gap", function (msg) {
      // Positions msg.first..msg.last were not sent: every graph re-reads after its mark.
      L.stats.gaps += 1;
      if (msg.last > L.streamPos) L.streamPos = msg.last;
      Object.keys(L.graphs).forEach(function (id) { resume(L.graphs[id]); });
      scheduleTick(true);
      scheduleAck();
    });
    socket.on("reload", function (msg) {
      Object.keys(L.graphs).forEach(function (id) {
        var g = L.graphs[id];
        if (g.waiting === msg.token) {
          g.waiting = null;
          requestRefresh(g, true);
        }
      });
    });
  };

  function resume(g) {
    if (!L.connected) return;
    L.token += 1;
    g.waiting = L.token;
    L.socket.emit("resume", {after: g.mark, token: g.waiting});
  }

  // A figure was (re)built on the server: start extending it from its position.
  L.setBase = function (id, base) {
    if (!base) return;
    var old = L.graphs[id];
    var g = {
      id: id,
      base: JSON.parse(JSON.stringify(base)),
      mark: base.pos,
      pending: [],
      waiting: null,
      count: base.count || 0,
      frozen: false,
      lastRefresh: old ? old.lastRefresh : 0,
      refreshTimer: old ? old.refreshTimer : null,
      busySince: 0,
      overlaid: 0,
    };
    L.graphs[id] = g;
    resume(g);
    hookPaint(g);
  };

  // --- receiving --------------------------------------------------------------------------

  function receive(events, token) {
    if (!events) return;
    L.stats.received += 1;
    var jobChange = false;
    var any = false;
    var t = now();
    for (var i = 0; i < events.length; i++) {
      var e = events[i];
      if (e.p > L.streamPos) L.streamPos = e.p;
      if (e.k === "j") jobChange = true;
      any = true;
      if (L.stats.enabled) {
        L.stats.events += 1;
        if (L.stats.seen[e.p] && token === null) L.stats.duplicates += 1;
        L.stats.seen[e.p] = t;
      }
    }
    Object.keys(L.graphs).forEach(function (id) {
      var g = L.graphs[id];
      if (g.waiting !== null) {
        if (token !== g.waiting) return;  // the catch-up will bring these
        g.waiting = null;
      }
      for (var i = 0; i < events.length; i++) {
        if (events[i].p > g.mark) {
          g.pending.push(events[i]);
          g.mark = events[i].p;
        }
      }
    });
    if (any) scheduleTick(jobChange);
    scheduleAck();
    scheduleFrame();
  }

  // Tell the server how far this page has handled the stream, at most every ACK_MS.
  var ACK_MS = 250;
  function scheduleAck() {
    if (L.ack.timer || !L.socket) return;
    L.ack.timer = setTimeout(function () {
      L.ack.timer = null;
      if (L.connected && L.streamPos > L.ack.sent) {
        L.ack.sent = L.streamPos;
        L.socket.emit("ack", {p: L.streamPos});
      }
    }, ACK_MS);
  }

  function scheduleFrame() {
    if (L.frameScheduled) return;
    L.frameScheduled = true;
    requestAnimationFrame(frame);
  }

  function frame() {
    L.frameScheduled = false;
    Object.keys(L.graphs).forEach(function (id) {
      var g = L.graphs[id];
      if (!document.getElementById(id)) {
        delete L.graphs[id];
        return;
      }
      if (!g.pending.length) return;
      // One extension at a time: while the graph still draws the last one, events gather and
      // go out together once it is drawn, so a slow redraw never queues up.
      if (g.busySince && now() - g.busySince < 1000) return;
      g.busySince = 0;
      if (g.frozen) {
        // A rebuild was asked for and will hold these events; ask again if none came.
        g.pending = [];
        if (now() - g.lastRefresh > 5000) requestRefresh(g, true);
        return;
      }
      var gd = graphDiv(id);
      // Extend only the figure this base describes: a rebuilt one may be on its way (or
      // drawn before its base arrived); its own base will take these events over.
      if (!gd || !gd.layout || !gd.data || !gd.layout.meta ||
          gd.layout.meta.live !== g.base.stamp) return;
      var events = g.pending;
      g.pending = [];
      if (g.base.kind === "timeline") applyTimeline(g, gd, events);
      else if (g.base.kind === "convergence") applyConvergence(g, gd, events);
    });
  }

  function graphDiv(id) {
    var el = document.getElementById(id);
    return el && el.querySelector(".js-plotly-plot");
  }

  // Append to the graph's traces: adds are, per trace index, the values appended to each of
  // its attributes ({index, cols: {"x": [...], "marker.color": [...], ...}}). Additions that
  // fit the axes as drawn are appended in place and drawn as an overlay (nothing redrawn);
  // otherwise one Plotly.extendTraces redraws the graph (with room for the x axes to grow),
  // and the next extension waits until it is drawn. ``layout``: changes that need a redraw.
  var OVERLAY_LIMIT = 3000;  // shapes drawn over a graph before it is redrawn for real

  function extend(g, gd, adds, layout) {
    adds.forEach(function (a) {
      var trace = gd.data[a.index];
      var n = trace.x ? trace.x.length : 0;
      a.prev = n ? [trace.x[n - 1], trace.y[n - 1]] : null;
    });
    var O = window.tuneloomOverlay;
    var found = !layout && O && !L.fullRedraws ? O.draw(gd, adds) : null;
    if (typeof found === "number") {
      adds.forEach(function (a) { appendInPlace(gd.data[a.index], a.cols); });
      g.overlaid += found;
      L.stats.overlays += 1;
      if (g.overlaid > OVERLAY_LIMIT) settle(g, gd);
      return true;
    }
    layout = layout || {};
    if (found && found.outside && !g.base.window) Object.assign(layout, O.grow(gd, found.outside));
    Object.keys(layout).forEach(function (key) { setNested(gd.layout, key, layout[key]); });
    var common = Object.keys(adds[0].cols).filter(function (key) {
      return adds.every(function (a) { return key in a.cols; });
    });
    var update = {};
    common.forEach(function (key) {
      update[key] = adds.map(function (a) { return a.cols[key]; });
    });
    adds.forEach(function (a) {
      var extra = {};
      Object.keys(a.cols).forEach(function (key) {
        if (common.indexOf(key) < 0) extra[key] = a.cols[key];
      });
      appendInPlace(gd.data[a.index], extra);
    });
    g.busySince = now();
    L.stats.extends += 1;
    var drawn = window.Plotly.extendTraces(gd, update, adds.map(function (a) { return a.index; }));
    Promise.resolve(drawn).then(function () { redrawn(g); }, function (err) {
      redrawn(g);
      requestRefresh(g, true);  // the figure changed under us: draw it again from the store
      if (window.console) console.warn("tuneloom: live update failed, redrawing", err);
    });
    return false;
  }

  function redrawn(g) {
    if (L.graphs[g.id] === g) {
      g.busySince = 0;
      if (g.pending.length) scheduleFrame();
    }
  }

  // Redraw the graph for real (its overlay shapes become Plotly points, with hover).
  function settle(g, gd) {
    if (!g.overlaid || g.busySince) return;
    g.busySince = now();
    L.stats.settles += 1;
    var drawn = function () {
      g.overlaid = 0;  // the redraw drew every point appended so far
      if (window.tuneloomOverlay) window.tuneloomOverlay.clear(gd);
      redrawn(g);
    };
    Promise.resolve(window.Plotly.redraw(gd)).then(drawn, drawn);
  }

  function setNested(obj, path, value) {
    var keys = path.split(".");
    for (var i = 0; i < keys.length - 1; i++) {
      if (typeof obj[keys[i]] !== "object" || obj[keys[i]] === null) obj[keys[i]] = {};
      obj = obj[keys[i]];
    }
    obj[keys[keys.length - 1]] = value;
  }

  // Append values to the trace's array attributes in place ("marker.color" -> trace.marker
  // .color); an attribute that is one value for the whole trace stays as it is.
  function appendInPlace(trace, cols) {
    Object.keys(cols).forEach(function (key) {
      var keys = key.split(".");
      var obj = trace;
      for (var i = 0; i < keys.length - 1 && obj; i++) obj = obj[keys[i]];
      var target = obj && obj[keys[keys.length - 1]];
      if (Array.isArray(target)) Array.prototype.push.apply(target, cols[key]);
    });
  }

  function passes(b, job, task) {
    if (b.jobs && b.jobs.indexOf(job) < 0) return false;
    if (b.tasks && b.tasks.indexOf(task) < 0) return false;
    return true;
  }

  function requestRefresh(g, force) {
    var wait = (g.base.refresh_ms || 1000) - (now() - g.lastRefresh);
    if (force || wait <= 0) {
      if (g.refreshTimer) { clearTimeout(g.refreshTimer); g.refreshTimer = null; }
      g.lastRefresh = now();
      g.frozen = g.base.mode !== "refresh";
      setProps(g.base.refresh, {data: {pos: L.streamPos, at: Date.now()}}, g.id);
    } else if (!g.refreshTimer) {
      g.refreshTimer = setTimeout(function () {
        g.refreshTimer = null;
        if (L.graphs[g.id] === g) requestRefresh(g, true);
      }, wait);
    }
  }

  // --- timeline ---------------------------------------------------------------------------

  function laneHeight(b, n) {
    return Math.max(200, 90 + (n > 0 ? n : 1) * (b.lane_px || 26));
  }

  function applyTimeline(g, gd, events) {
    var b = g.base;
    var relevant = events.filter(function (e) { return e.k === "s" && passes(b, e.j, e.t); });
    if (!relevant.length) return;
    if (b.mode !== "bars") {
      requestRefresh(g, false);
      return;
    }
    var c = {y: [], x: [], base: [], color: [], opacity: [], line: [], hover: [], pos: []};
    var newLanes = [];
    for (var i = 0; i < relevant.length; i++) {
      var e = relevant[i];
      var offset = e.c === "sim" ? 0 : b.t0;
      if (offset === null || offset === undefined) {
        requestRefresh(g, true);
        return;
      }
      var x0 = e.a - offset;
      var x1 = e.b - offset;
      if (b.window && (x1 < b.window[0] || x0 > b.window[1])) continue;
      if (b.lanes.indexOf(e.l) < 0) {
        b.lanes.push(e.l);
        newLanes.push(e.l);
      }
      c.y.push(e.l);
      c.x.push(x1 - x0);
      c.base.push(x0);
      c.color.push(e.co);
      c.opacity.push(e.op);
      c.line.push(e.st === "ok" ? "rgba(0,0,0,0)" : "#d62728");
      c.hover.push(e.h);
      c.pos.push(e.p);
    }
    if (!c.pos.length) return;
    var cols = {
      "y": c.y, "x": c.x, "base": c.base, "marker.color": c.color,
      "marker.opacity": c.opacity, "marker.line.color": c.line, "hovertext": c.hover,
      "customdata": c.pos,
    };
    var layout = null;
    if (g.count === 0 && gd.layout.annotations && gd.layout.annotations.length) {
      layout = {annotations: []};
    }
    if (newLanes.length) {
      layout = layout || {};
      layout["yaxis.categoryarray"] = b.lanes.slice();
      layout.height = laneHeight(b, b.lanes.length);
    }
    g.count += c.pos.length;
    applied(c.pos, extend(g, gd, [{index: 0, cols: cols}], layout));
    if (g.count > b.limit) requestRefresh(g, true);
  }

  // --- convergence ------------------------------------------------------------------------

  function applyConvergence(g, gd, events) {
    var b = g.base;
    var relevant = events.filter(function (e) { return e.k === "r" && passes(b, e.j, e.t); });
    if (!relevant.length) return;
    if (b.mode !== "patch") {
      requestRefresh(g, false);
      return;
    }
    var traces = {};
    function push(index, x, y, pos, color) {
      var t = traces[index] || (traces[index] = {x: [], y: [], cd: [], color: []});
      t.x.push(x);
      t.y.push(y);
      t.cd.push(pos);
      if (color !== undefined) t.color.push(color);
    }
    var positions = [];
    for (var i = 0; i < relevant.length; i++) {
      var e = relevant[i];
      var s = b.series[e.j + SEP + e.t];
      if (!s) {
        requestRefresh(g, true);
        return;
      }
      var t0 = b.job_t0[e.j];
      if (t0 === undefined || t0 === null) t0 = b.job_t0[e.j] = e.ts;
      s.n += 1;
      var t = Math.round((e.ts - t0) * 1e4) / 1e4;
      if (e.ms !== null && (s.best === null || e.ms < s.best)) {
        s.best = e.ms;
        s.best_pos = e.p;
      }
      if (b.window) {
        var axisT = e.c === "sim" ? e.ts : e.ts - b.t0_wall;
        if (axisT < b.window[0] || axisT > b.window[1]) continue;
      }
      push(s.left, s.n, s.best, [s.best_pos, e.p]);
      push(s.right, t, s.best, [s.best_pos, e.p]);
      if (e.ms !== null && b.points) {
        push(b.points[0], s.n, e.ms, e.p, e.co);
        push(b.points[1], t, e.ms, e.p, e.co);
      } else if (e.ms === null) {
        push(b.errors[0], s.n, s.best, e.p);
        push(b.errors[1], t, s.best, e.p);
      }
      positions.push(e.p);
    }
    var keys = Object.keys(traces);
    if (!keys.length) return;
    var adds = keys.map(function (key) {
      var t = traces[key];
      var cols = {x: t.x, y: t.y, customdata: t.cd};
      if (t.color.length) cols["marker.color"] = t.color;
      return {index: parseInt(key, 10), cols: cols};
    });
    applied(positions, extend(g, gd, adds, null));
  }

  // --- ticks for tables, legends and other views refreshed by the server -------------------

  function scheduleTick(fast) {
    var gap = fast ? 250 : 2000;
    if (L.tick.timer) {
      if (!fast) return;
      clearTimeout(L.tick.timer);
    }
    var wait = Math.max(0, gap - (now() - L.tick.last));
    L.tick.timer = setTimeout(function () {
      L.tick.timer = null;
      L.tick.last = now();
      setProps("live-tick", {data: {pos: L.streamPos, at: Date.now()}}, "live-status");
    }, wait);
  }

  // --- zoom ----------------------------------------------------------------------------------

  // The time window a Plotly relayout event asks for ({window: [lo, hi]}, {window: null} for
  // a reset), or no_update when the event is not a zoom of the x axis.
  L.zoomWindow = function (r) {
    var skip = window.dash_clientside.no_update;
    if (!r) return skip;
    var lo = r["xaxis.range[0]"];
    var hi = r["xaxis.range[1]"];
    if (lo === undefined && Array.isArray(r["xaxis.range"])) {
      lo = r["xaxis.range"][0];
      hi = r["xaxis.range"][1];
    }
    if (lo !== undefined && hi !== undefined) {
      lo = Number(lo);
      hi = Number(hi);
      return {window: [Math.min(lo, hi), Math.max(lo, hi)], at: Date.now()};
    }
    if (r["xaxis.autorange"]) return {window: null, at: Date.now()};
    return skip;
  };

  // --- measurements (benchmarks and tests turn them on) -----------------------------------

  // Positions handed to a graph; drawn as an overlay, they are painted in the next frame
  // (otherwise when the redraw is: see hookPaint).
  function applied(positions, overlaid) {
    if (!L.stats.enabled) return;
    var t = now();
    for (var i = 0; i < positions.length; i++) {
      if (!(positions[i] in L.stats.applied)) L.stats.applied[positions[i]] = t;
    }
    if (overlaid) {
      requestAnimationFrame(function () {
        var painted = now();
        positions.forEach(function (p) {
          if (!(p in L.stats.painted)) L.stats.painted[p] = painted;
        });
      });
    }
  }

  // Follow the graph's redraws: a finished one lets the next patch go (and, when measuring,
  // records when each position was first painted).
  function hookPaint(g) {
    var tries = 0;
    (function attach() {
      var el = document.getElementById(g.id);
      var gd = el && el.querySelector(".js-plotly-plot");
      if (!gd || !gd.on) {
        if (tries++ < 100) setTimeout(attach, 20);
        return;
      }
      if (gd.__tuneloomHooked) return;
      gd.__tuneloomHooked = true;
      var O = window.tuneloomOverlay;
      gd.on("plotly_afterplot", function () {
        var current = L.graphs[g.id];
        if (O && O.fresh(gd)) {
          O.clear(gd);  // the redraw drew every point the overlay stood in for
          if (current) current.overlaid = 0;
        } else if (current && current.overlaid) {
          current.busySince = 0;
          settle(current, gd);  // a redraw of stale points (a zoom): draw them all again
          return;
        }
        if (current) {
          current.busySince = 0;
          if (current.pending.length) scheduleFrame();
        }
        if (L.stats.enabled) requestAnimationFrame(function () { markPainted(gd); });
      });
      // Hover needs real Plotly points: redraw for the pointer when shapes are overlaid.
      gd.addEventListener("mouseenter", function () {
        var current = L.graphs[g.id];
        if (current && current.overlaid) settle(current, gd);
      });
      if (L.stats.enabled) markPainted(gd);
    })();
  }

  // Every position drawn in the figure (customdata) gets its first paint time.
  function markPainted(gd) {
    var t = now();
    var data = gd.data || [];
    for (var i = 0; i < data.length; i++) {
      var cd = data[i].customdata;
      if (!cd) continue;
      for (var k = 0; k < cd.length; k++) {
        var p = Array.isArray(cd[k]) ? cd[k][1] : cd[k];  // best lines: [best, this record]
        if (p !== null && p !== undefined && !(p in L.stats.painted)) L.stats.painted[p] = t;
      }
    }
  }

  // Positions drawn by the named traces of a graph, for counting lost and duplicated events.
  L.drawn = function (id, names) {
    var el = document.getElementById(id);
    var gd = el && el.querySelector(".js-plotly-plot");
    if (!gd || !gd.data) return [];
    var out = [];
    gd.data.forEach(function (trace) {
      if (trace.customdata && names.indexOf(trace.name) >= 0) out.push.apply(out, trace.customdata);
    });
    return out;
  };

  // Records drawn on the convergence graph's best-so-far lines (one point per record, in
  // the trials subplot), for counting lost and duplicated events.
  L.drawnRecords = function (id) {
    var el = document.getElementById(id);
    var gd = el && el.querySelector(".js-plotly-plot");
    var g = L.graphs[id];
    if (!gd || !gd.data || !g || !g.base.series) return [];
    var out = [];
    Object.keys(g.base.series).forEach(function (key) {
      var trace = gd.data[g.base.series[key].left];
      (trace.customdata || []).forEach(function (cd) { out.push(cd[1]); });
    });
    return out;
  };
})();
