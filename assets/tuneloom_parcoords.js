/*
 * tuneloom parallel coordinates without WebGL: one polyline per candidate on a 2D canvas,
 * axes, ticks and brushes in an SVG layer above it.
 *
 * Fed by a clientside callback with a dcc.Store's data (dashboard/figures/searchspace.py,
 * parcoords_data): per axis its values as a base64 little-endian typed array (category
 * codes, or log10 ms for latency), its range and ticks; the last axis colours the lines.
 * Lines are drawn as what they paint: between two neighbouring axes, the segments of all
 * lines that join the same pixel rows (in the same colour) are one stroke whose opacity is
 * what that many strokes of one line's opacity laid over each other give, 1 - (1 - a)^k.
 * 50,000 lines of nine axes become ~1,300 strokes (the whole draw, decoding included,
 * takes ~0.1 s with software rendering). Every line is drawn into a cached layer (grey when
 * something is brushed, coloured when nothing is), slow colours first so the fast lie on
 * top; a brush change blits that layer and draws only the brushed lines over it, once per
 * animation frame.
 *
 * Drag on an axis to brush a range; brushes on several axes combine; a click on an axis
 * clears its brush. The container reports what it drew: data-lines (lines laid into the
 * last full layer), data-strokes (the distinct segments stroked for them), data-brushed
 * (candidates inside every brush), data-drawn (a draw count, set one animation frame after
 * the last draw call) and data-drawn-at (performance.now() then). A refresh of the same
 * (job, task) keeps the brushes.
 */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var HEIGHT = 460;
  var MARGIN = {top: 96, right: 96, bottom: 24, left: 46};
  var HIT = 28;  // width of the strip around an axis that takes a brush
  var CLICK = 3;  // a press that moves less than this many pixels is a click
  var GREY = [120, 128, 140];
  var LEVELS = 48;  // opacities a stroke can have (strokes of one colour and level share a path)
  var FAINTEST = 0.04;  // a segment drawn by one line alone is still seen
  // Viridis: the fastest lines dark, the slowest yellow.
  var COLORS = [
    [68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37],
  ];

  var P = {views: {}};
  window.tuneloomParcoords = P;

  function decode(b64, dtype) {
    var bin = atob(b64);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    if (dtype === "f4") return new Float32Array(bytes.buffer);
    if (dtype === "u2") return new Uint16Array(bytes.buffer);
    return bytes;
  }

  function rgba(c, alpha) {
    return "rgba(" + c[0] + "," + c[1] + "," + c[2] + "," + alpha + ")";
  }

  // One line's opacity when ``k`` lines are drawn: faint when many, solid when few.
  function lineAlpha(k) {
    return Math.max(0.004, Math.min(0.8, 40 / Math.max(k, 1)));
  }

  function el(tag, attrs, parent) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function fmt(n) {
    return n.toLocaleString("en-US");
  }

  // --- data -------------------------------------------------------------------------------

  function prepare(data) {
    var axes = data.axes.map(function (a) {
      return {
        name: a.name, label: a.label, range: a.range, tickvals: a.tickvals,
        ticktext: a.ticktext, values: decode(a.data, a.dtype),
      };
    });
    var n = data.n;
    var color = axes[axes.length - 1];
    var lo = color.range[0];
    var span = color.range[1] - color.range[0] || 1;
    var bucket = new Uint8Array(n);
    for (var i = 0; i < n; i++) {
      var b = Math.floor((color.values[i] - lo) / span * COLORS.length);
      bucket[i] = b < 0 ? 0 : b >= COLORS.length ? COLORS.length - 1 : b;
    }
    var every = new Uint32Array(n);
    for (var j = 0; j < n; j++) every[j] = j;
    return {key: data.key, title: data.title, n: n, axes: axes, bucket: bucket, every: every,
      initial: data.brush || {}};
  }

  // --- geometry ---------------------------------------------------------------------------

  function layout(view) {
    var width = Math.max(view.el.clientWidth, 200);
    var m = view.data.axes.length;
    var inner = width - MARGIN.left - MARGIN.right;
    var h = HEIGHT - MARGIN.top - MARGIN.bottom;
    view.width = width;
    view.xs = view.data.axes.map(function (_, i) {
      return MARGIN.left + (m > 1 ? (i * inner) / (m - 1) : inner / 2);
    });
    view.h = h;
    view.ys = view.data.axes.map(function (a) {
      var r0 = a.range[0];
      var k = h / (a.range[1] - a.range[0] || 1);
      var ys = new Uint16Array(view.data.n);  // pixel rows
      for (var i = 0; i < ys.length; i++) {
        ys[i] = Math.round(MARGIN.top + h - (a.values[i] - r0) * k);
      }
      return ys;
    });
  }

  function valueAt(view, axis, y) {
    var a = view.data.axes[axis];
    return a.range[0] + (MARGIN.top + view.h - y) / view.h * (a.range[1] - a.range[0]);
  }

  function pixelOf(view, axis, v) {
    var a = view.data.axes[axis];
    return MARGIN.top + view.h - (v - a.range[0]) / (a.range[1] - a.range[0]) * view.h;
  }

  // --- drawing ----------------------------------------------------------------------------

  // Stroke the lines ``rows[0..count)``, coloured by latency or grey. Per gap between
  // axes, the lines are counted per (left row, right row, colour); each such segment is
  // stroked once at the opacity of its count. Returns [segments stroked, lines laid in].
  function strokeLines(ctx, view, rows, count, colored) {
    var xs = view.xs;
    var ys = view.ys;
    var bucket = view.data.bucket;
    var buckets = colored ? COLORS.length : 1;
    var rowsUp = HEIGHT + 1;
    var size = rowsUp * rowsUp * buckets;
    if (!view.tally || view.tally.length < size) view.tally = new Uint32Array(size);
    var tally = view.tally;
    var touched = new Uint32Array(Math.min(count, size));
    var a = lineAlpha(count);
    var keep = Math.log(1 - a);
    var batches = [];  // per colour, per opacity level: [x0, y0, x1, y1, ...]
    for (var b = 0; b < buckets; b++) batches.push([]);
    var strokes = 0;
    var laid = 0;
    for (var g = 0; g + 1 < xs.length; g++) {
      var left = ys[g];
      var right = ys[g + 1];
      var t = 0;
      for (var r = 0; r < count; r++) {
        var i = rows[r];
        var key = (left[i] * rowsUp + right[i]) * buckets + (colored ? bucket[i] : 0);
        if (tally[key]++ === 0) touched[t++] = key;
      }
      if (g === 0) laid = r;
      for (var s = 0; s < t; s++) {
        var k = touched[s];
        var alpha = Math.max(FAINTEST, 1 - Math.exp(keep * tally[k]));
        tally[k] = 0;
        var level = Math.min(LEVELS - 1, Math.floor(alpha * LEVELS));
        var col = k % buckets;
        var pair = (k - col) / buckets;
        var perLevel = batches[col];
        var list = perLevel[level] || (perLevel[level] = []);
        list.push(xs[g], Math.floor(pair / rowsUp), xs[g + 1], pair % rowsUp);
        strokes++;
      }
    }
    ctx.lineWidth = 1;
    for (var c = buckets - 1; c >= 0; c--) {  // slow colours first
      for (var lv = 0; lv < LEVELS; lv++) {
        var segs = batches[c][lv];
        if (!segs) continue;
        ctx.beginPath();
        for (var q = 0; q < segs.length; q += 4) {
          ctx.moveTo(segs[q], segs[q + 1]);
          ctx.lineTo(segs[q + 2], segs[q + 3]);
        }
        ctx.strokeStyle = rgba(colored ? COLORS[c] : GREY, ((lv + 0.5) / LEVELS).toFixed(3));
        ctx.stroke();
      }
    }
    return [strokes, laid];
  }

  function canvasOf(view) {
    var c = document.createElement("canvas");
    c.width = view.width;
    c.height = HEIGHT;
    return c;
  }

  // The layer of every line, coloured or grey, drawn once per size and kept.
  function layer(view, colored) {
    var name = colored ? "colored" : "grey";
    if (!view.layers[name]) {
      var c = canvasOf(view);
      var done = strokeLines(c.getContext("2d"), view, view.data.every, view.data.n, colored);
      view.layers[name] = c;
      view.strokes = done[0];
      view.lines = done[1];
    }
    return view.layers[name];
  }

  function selection(view) {
    var keys = Object.keys(view.brushes);
    var n = view.data.n;
    var picked = new Uint32Array(n);
    var count = 0;
    for (var i = 0; i < n; i++) {
      var inside = true;
      for (var k = 0; k < keys.length && inside; k++) {
        var v = view.data.axes[keys[k]].values[i];
        var b = view.brushes[keys[k]];
        inside = v >= b[0] && v <= b[1];
      }
      if (inside) picked[count++] = i;
    }
    return {rows: picked, count: count};
  }

  function draw(view) {
    view.frame = null;
    var ctx = view.canvas.getContext("2d");
    var brushed = Object.keys(view.brushes).length > 0;
    var sel = selection(view);
    view.selected = sel;
    ctx.clearRect(0, 0, view.width, HEIGHT);
    ctx.drawImage(layer(view, !brushed), 0, 0);
    if (brushed) strokeLines(ctx, view, sel.rows, sel.count, true);
    drawBrushes(view);
    view.count.textContent = brushed
      ? fmt(sel.count) + " of " + fmt(view.data.n) + " candidates brushed"
      : "All " + fmt(view.data.n) + " candidates; none brushed";
    var box = view.el;
    box.dataset.lines = String(view.lines);
    box.dataset.strokes = String(view.strokes);
    box.dataset.brushed = String(sel.count);
    var generation = ++view.generation;
    requestAnimationFrame(function () {
      if (view.generation !== generation) return;
      box.dataset.drawnAt = String(performance.now());
      box.dataset.drawn = String(generation);
    });
  }

  function schedule(view) {
    if (!view.frame) view.frame = requestAnimationFrame(function () { draw(view); });
  }

  // --- axes and brushes -------------------------------------------------------------------

  function drawAxes(view) {
    var svg = view.svg;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("width", view.width);
    svg.setAttribute("height", HEIGHT);
    var last = view.data.axes.length - 1;
    view.brushRects = [];
    view.data.axes.forEach(function (a, i) {
      var x = view.xs[i];
      var g = el("g", {"class": "tl-pc-axis", "data-axis": i}, svg);
      el("line", {x1: x, x2: x, y1: MARGIN.top, y2: MARGIN.top + view.h}, g);
      var anchor = i === last ? "start" : "end";
      var dx = i === last ? 6 : -6;
      a.tickvals.forEach(function (v, t) {
        var y = pixelOf(view, i, v);
        el("line", {x1: x - 3, x2: x + 3, y1: y, y2: y, "class": "tl-pc-tick"}, g);
        var text = el("text", {x: x + dx, y: y + 3.5, "text-anchor": anchor}, g);
        text.textContent = a.ticktext[t];
      });
      var label = el("text", {
        x: x, y: MARGIN.top - 10, "class": "tl-pc-label",
        transform: "rotate(-30 " + x + " " + (MARGIN.top - 10) + ")",
      }, g);
      label.textContent = a.label;
      el("title", {}, label).textContent = a.name;
      view.brushRects.push(el("rect", {x: x - 7, width: 14, y: 0, height: 0,
        "class": "tl-pc-brush", visibility: "hidden"}, g));
      var hit = el("rect", {x: x - HIT / 2, width: HIT, y: MARGIN.top - 4, height: view.h + 8,
        "class": "tl-pc-hit"}, g);
      hit.addEventListener("pointerdown", function (e) { press(view, i, e, hit); });
    });
    // The colour scale beside the latency axis.
    var xl = view.xs[last] + 44;
    var defs = el("defs", {}, svg);
    var grad = el("linearGradient", {id: view.id + "-scale", x1: 0, x2: 0, y1: 1, y2: 0}, defs);
    COLORS.forEach(function (c, k) {
      el("stop", {offset: k / (COLORS.length - 1), "stop-color": rgba(c, 1)}, grad);
    });
    el("rect", {x: xl, y: MARGIN.top, width: 8, height: view.h,
      fill: "url(#" + view.id + "-scale)"}, svg);
  }

  function drawBrushes(view) {
    view.brushRects.forEach(function (rect, i) {
      var b = view.brushes[i];
      if (!b) {
        rect.setAttribute("visibility", "hidden");
        return;
      }
      var y0 = Math.max(MARGIN.top, pixelOf(view, i, b[1]));
      var y1 = Math.min(MARGIN.top + view.h, pixelOf(view, i, b[0]));
      rect.setAttribute("y", y0);
      rect.setAttribute("height", Math.max(1, y1 - y0));
      rect.setAttribute("visibility", "visible");
    });
  }

  function press(view, axis, e, hit) {
    e.preventDefault();
    var top = view.svg.getBoundingClientRect().top;
    var y0 = e.clientY - top;
    var moved = false;
    hit.setPointerCapture(e.pointerId);
    function move(ev) {
      var y1 = Math.max(MARGIN.top, Math.min(MARGIN.top + view.h, ev.clientY - top));
      if (!moved && Math.abs(y1 - y0) < CLICK) return;
      moved = true;
      var a = valueAt(view, axis, Math.max(y0, y1));
      var b = valueAt(view, axis, Math.min(y0, y1));
      view.brushes[axis] = [a, b];
      schedule(view);
    }
    function up(ev) {
      hit.removeEventListener("pointermove", move);
      hit.removeEventListener("pointerup", up);
      hit.removeEventListener("pointercancel", up);
      if (ev.type === "pointerup" && !moved) delete view.brushes[axis];  // a click clears
      schedule(view);
    }
    hit.addEventListener("pointermove", move);
    hit.addEventListener("pointerup", up);
    hit.addEventListener("pointercancel", up);
  }

  // --- the view ---------------------------------------------------------------------------

  function build(view) {
    var box = view.el;
    while (box.firstChild) box.removeChild(box.firstChild);
    var head = document.createElement("div");
    head.className = "tl-pc-head";
    var title = document.createElement("span");
    title.className = "tl-pc-title";
    title.textContent = view.data.title || "";
    view.count = document.createElement("span");
    view.count.className = "tl-pc-count tl-muted";
    var clear = document.createElement("button");
    clear.className = "tl-pc-clear";
    clear.textContent = "clear brushes";
    clear.addEventListener("click", function () {
      view.brushes = {};
      schedule(view);
    });
    head.appendChild(title);
    head.appendChild(view.count);
    head.appendChild(clear);
    var stage = document.createElement("div");
    stage.className = "tl-pc-stage";
    stage.style.height = HEIGHT + "px";
    view.canvas = document.createElement("canvas");
    view.svg = el("svg", {"class": "tl-pc-svg"});
    stage.appendChild(view.canvas);
    stage.appendChild(view.svg);
    box.appendChild(head);
    box.appendChild(stage);
    resize(view);
  }

  function resize(view) {
    layout(view);
    view.layers = {};
    view.canvas.width = view.width;
    view.canvas.height = HEIGHT;
    drawAxes(view);
    draw(view);
  }

  function sameTask(a, b) {
    return a && b && a[0] === b[0] && a[1] === b[1];
  }

  // Draw ``data`` (or clear the view when it is empty) in the element ``id``.
  P.render = function (id, data, tries) {
    var box = document.getElementById(id);
    var old = P.views[id];
    if (!data) {
      if (old && old.observer) old.observer.disconnect();
      delete P.views[id];
      if (box) {
        while (box.firstChild) box.removeChild(box.firstChild);
        box.style.display = "none";
        delete box.dataset.drawn;
      }
      return;
    }
    if (!box || box.clientWidth === 0) {  // not laid out yet: try again next frame
      if (box) box.style.display = "";
      var next = (tries || 0) + 1;
      if (next <= 120) requestAnimationFrame(function () { P.render(id, data, next); });
      return;
    }
    box.style.display = "";
    if (old && old.observer) old.observer.disconnect();
    var view = {id: id, el: box, data: prepare(data), generation: old ? old.generation : 0,
      brushes: {}, layers: {}};
    if (old && old.el === box && sameTask(old.data.key, view.data.key)) {
      var names = view.data.axes.map(function (a) { return a.name; });
      Object.keys(old.brushes).forEach(function (k) {
        var at = names.indexOf(old.data.axes[k].name);
        if (at >= 0) view.brushes[at] = old.brushes[k];
      });
    } else {
      Object.keys(view.data.initial).forEach(function (k) {
        view.brushes[k] = view.data.initial[k];
      });
    }
    P.views[id] = view;
    build(view);
    var width = view.width;
    view.observer = new ResizeObserver(function () {
      if (P.views[id] !== view || !box.isConnected || box.clientWidth === 0) return;
      if (Math.max(box.clientWidth, 200) !== width) {
        width = Math.max(box.clientWidth, 200);
        resize(view);
      }
    });
    view.observer.observe(box);
  };

  // Draw a view again at the next animation frame (after its brushes were set).
  P.redraw = function (id) {
    if (P.views[id]) schedule(P.views[id]);
  };

  // What a view shows: the lines drawn, the brushes (axis index -> [low, high] value), the
  // candidates inside them (indices into the data, ascending) and whether the last
  // change is drawn (settled).
  P.state = function (id) {
    var view = P.views[id];
    if (!view) return null;
    return {
      n: view.data.n, lines: view.lines, brushes: view.brushes,
      settled: !view.frame && view.el.dataset.drawn === String(view.generation),
      selected: Array.prototype.slice.call(view.selected.rows, 0, view.selected.count),
      axes: view.data.axes.map(function (a) { return a.name; }), xs: view.xs,
      top: MARGIN.top, height: view.h,
    };
  };
})();
