/*
 * tuneloom live overlay: draws the points a live batch adds to a Plotly graph without
 * redrawing the graph.
 *
 * Plotly redraws every point of a figure on any data change (extendTraces included), which
 * costs time in proportion to the whole figure. New bars, markers and line steps that fall
 * inside the axes as drawn are instead added as plain SVG shapes in the subplot's own layer,
 * at the pixels Plotly's axes give them; the same values are appended to the traces' data in
 * place, so the next real redraw (a batch that does not fit, a zoom, a resize, the pointer
 * entering the graph for hover) draws them as Plotly points and the overlay is cleared.
 */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var HEADROOM = 0.25;  // room left on a growing axis, as a share of its span
  var MIN_X_ROOM = 10;  // and at least this much on an x axis (seconds or trials)
  var NEAR = 0.1;  // an x axis this close to its right end grows with one that ran past

  function axisName(id) {
    return id.charAt(0) + "axis" + id.slice(1);  // "x2" -> "xaxis2"
  }

  function inside(ax, px) {
    return isFinite(px) && px >= -0.5 && px <= ax._length + 0.5;
  }

  function at(values, i, fallback) {
    return values ? values[i] : fallback;
  }

  // Pixel shapes for the additions, {outside: {axis name: [lowest, highest]}} when some fall
  // outside linear or log axes as drawn (a redraw that grows those axes draws them), or null
  // when the graph must simply be redrawn. adds: per trace index, the arrays being appended
  // ({index, prev, cols: {x, y, base, "marker.color", ...}}).
  function shapes(gd, adds) {
    var fl = gd._fullLayout;
    if (!fl || !fl._plots || !gd._fullData) return null;
    var out = [];
    var outside = {};
    var extent = {};  // x axis name -> [lowest, highest] x added
    var fits = true;
    var growable = true;
    function check(ax, name, value, px) {
      if (name.charAt(0) === "x" && ax.type === "linear") {
        var e = extent[name] || (extent[name] = [value, value]);
        e[0] = Math.min(e[0], value);
        e[1] = Math.max(e[1], value);
      }
      if (inside(ax, px)) return;
      fits = false;
      if ((ax.type !== "linear" && ax.type !== "log") || !(ax.type !== "log" || value > 0)) {
        growable = false;
        return;
      }
      var v = ax.type === "log" ? Math.log10(value) : value;
      var seen = outside[name] || (outside[name] = [v, v]);
      seen[0] = Math.min(seen[0], v);
      seen[1] = Math.max(seen[1], v);
    }
    for (var k = 0; k < adds.length; k++) {
      var a = adds[k];
      var c = a.cols;
      var t = gd._fullData[a.index];
      if (!t) return null;
      if (t.visible !== true) continue;  // hidden from the legend: nothing to draw
      var xn = axisName(t.xaxis);
      var yn = axisName(t.yaxis);
      var xa = fl[xn];
      var ya = fl[yn];
      var subplot = t.xaxis + t.yaxis;
      if (!xa || !ya || !fl._plots[subplot]) return null;
      if (t.type === "bar") {
        var half = Math.abs(ya._m) * (typeof t.width === "number" ? t.width : 0.8) / 2;
        var marker = t.marker || {};
        if (!c.base) return null;
        for (var i = 0; i < c.x.length; i++) {
          var x0 = xa.d2p(c.base[i]);
          var x1 = xa.d2p(c.base[i] + c.x[i]);
          var yc = ya.d2p(c.y[i]);
          check(xa, xn, c.base[i], x0);
          check(xa, xn, c.base[i] + c.x[i], x1);
          check(ya, yn, c.y[i], yc);
          out.push({
            subplot: subplot, kind: "bar", x0: x0, x1: x1, y0: yc - half, y1: yc + half,
            fill: at(c["marker.color"], i, marker.color),
            opacity: at(c["marker.opacity"], i, marker.opacity),
            stroke: at(c["marker.line.color"], i, (marker.line || {}).color),
            width: (marker.line || {}).width || 0,
          });
        }
      } else if (t.type === "scatter") {
        var mode = t.mode || "";
        var line = mode.indexOf("lines") >= 0 ? t.line || {} : null;
        var m = mode.indexOf("markers") >= 0 ? t.marker || {} : null;
        var prev = a.prev;
        prev = prev && prev[1] !== null ? [xa.d2p(prev[0]), ya.d2p(prev[1])] : null;
        for (var j = 0; j < c.x.length; j++) {
          if (c.y[j] === null || c.y[j] === undefined) {
            prev = null;
            continue;
          }
          var px = xa.d2p(c.x[j]);
          var py = ya.d2p(c.y[j]);
          check(xa, xn, c.x[j], px);
          check(ya, yn, c.y[j], py);
          if (line && prev) {
            out.push({
              subplot: subplot, kind: "line", from: prev, to: [px, py], shape: line.shape,
              stroke: line.color, width: line.width || 2, dash: line.dash,
            });
          }
          if (m) {
            out.push({
              subplot: subplot, kind: /^x/.test(m.symbol || "") ? "cross" : "dot", x: px, y: py,
              size: m.size || 6, fill: at(c["marker.color"], j, m.color), opacity: m.opacity,
              stroke: (m.line || {}).color, width: (m.line || {}).width || 0,
            });
          }
          prev = [px, py];
        }
      } else {
        return null;
      }
    }
    if (!fits && growable) {
      // Axes grow together: one that is about to overflow too grows in the same redraw.
      Object.keys(extent).forEach(function (name) {
        var r = fl[name].range;
        var r1 = Math.max(r[0], r[1]);
        if (!(name in outside) && extent[name][1] > r1 - NEAR * Math.abs(r[1] - r[0])) {
          outside[name] = [extent[name][0], r1 + 1e-9 * Math.abs(r1)];
        }
      });
    }
    if (!fits) return growable ? {outside: outside} : null;
    return {shapes: out};
  }

  function dashArray(dash, width) {
    var w = Math.max(width, 3);
    var table = {
      dot: [w, w], dash: [3 * w, 3 * w], longdash: [5 * w, 5 * w],
      dashdot: [3 * w, w, w, w], longdashdot: [5 * w, 2 * w, w, 2 * w],
    };
    return table[dash] ? table[dash].join(",") : null;
  }

  function layer(gd, subplot) {
    var plot = gd._fullLayout._plots[subplot].plot;
    var node = plot && plot.node ? plot.node() : null;
    if (!node) return null;
    var g = node.querySelector(":scope > g.tl-overlay");
    if (!g) {
      g = document.createElementNS(SVG, "g");
      g.setAttribute("class", "tl-overlay");
      node.appendChild(g);
    }
    return g;
  }

  function element(s) {
    var el = document.createElementNS(SVG, "path");
    var d;
    if (s.kind === "bar") {
      d = "M" + s.x0 + "," + s.y0 + "H" + s.x1 + "V" + s.y1 + "H" + s.x0 + "Z";
    } else if (s.kind === "line") {
      d = "M" + s.from[0] + "," + s.from[1] +
        (s.shape === "hv" ? "H" + s.to[0] + "V" + s.to[1] : "L" + s.to[0] + "," + s.to[1]);
    } else if (s.kind === "cross") {
      var h = s.size / 2;
      d = "M" + (s.x - h) + "," + (s.y - h) + "l" + 2 * h + "," + 2 * h +
        "M" + (s.x + h) + "," + (s.y - h) + "l" + -2 * h + "," + 2 * h;
    } else {
      var r = s.size / 2;
      d = "M" + (s.x + r) + "," + s.y + "A" + r + "," + r + " 0 1,1 " + s.x + "," + (s.y - r) +
        "A" + r + "," + r + " 0 0,1 " + (s.x + r) + "," + s.y + "Z";
    }
    el.setAttribute("d", d);
    if (s.kind === "line") {
      el.setAttribute("fill", "none");
      el.setAttribute("stroke", s.stroke);
      el.setAttribute("stroke-width", s.width);
      var dash = dashArray(s.dash, s.width);
      if (dash) el.setAttribute("stroke-dasharray", dash);
    } else {
      el.setAttribute("fill", s.kind === "cross" ? "none" : s.fill || "#444");
      if (s.opacity !== undefined && s.opacity !== null) el.setAttribute("opacity", s.opacity);
      if (s.stroke && s.width) {
        el.setAttribute("stroke", s.stroke);
        el.setAttribute("stroke-width", s.width);
        el.setAttribute("vector-effect", "non-scaling-stroke");
      }
    }
    return el;
  }

  var O = {};
  window.tuneloomOverlay = O;

  // Draw the additions over the graph if they fit the axes as drawn. Returns the number of
  // shapes drawn, or {outside: ...} / null when the graph must be redrawn (see shapes).
  O.draw = function (gd, adds) {
    var found = shapes(gd, adds);
    if (!found || found.outside) return found;
    var layers = {};
    found.shapes.forEach(function (s) {
      var g = layers[s.subplot] || (layers[s.subplot] = layer(gd, s.subplot));
      if (g) g.appendChild(element(s));
    });
    return found.shapes.length;
  };

  // Remove every overlay shape (after a redraw that drew their points).
  O.clear = function (gd) {
    var groups = gd.querySelectorAll("g.tl-overlay");
    for (var i = 0; i < groups.length; i++) groups[i].parentNode.removeChild(groups[i]);
  };

  // Number of overlay shapes on the graph.
  O.count = function (gd) {
    return gd.querySelectorAll("g.tl-overlay > path").length;
  };

  // Did the last redraw draw every point of the data (nothing appended since)?
  O.fresh = function (gd) {
    var cd = gd.calcdata;
    if (!cd || !gd.data || cd.length !== gd.data.length) return false;
    for (var i = 0; i < gd.data.length; i++) {
      var full = gd._fullData && gd._fullData[i];
      if (full && full.visible !== true) continue;  // hidden traces are not computed
      var x = gd.data[i].x;
      if (x && cd[i] && x.length > cd[i].length) return false;
    }
    return true;
  };

  // Layout changes that fix the range of each axis in ``outside`` (axis name -> [lowest,
  // highest] value asked for, log10 of it on log axes) so that it shows them with room to
  // grow on the side they ran past: the next additions then fit as an overlay. An x axis
  // never grows to the left (time and trials only increase).
  O.grow = function (gd, outside) {
    var fl = gd._fullLayout;
    var layout = {};
    Object.keys(outside).forEach(function (name) {
      var ax = fl[name];
      if (!ax || !ax.range) return;
      var r0 = Math.min(ax.range[0], ax.range[1]);
      var r1 = Math.max(ax.range[0], ax.range[1]);
      var lo = Math.min(r0, outside[name][0]);
      var hi = Math.max(r1, outside[name][1]);
      var isX = name.charAt(0) === "x";
      var room = HEADROOM * (hi - lo);
      if (hi > r1 || (isX && hi >= r1)) hi += isX ? Math.max(room, MIN_X_ROOM) : room;
      if (lo < r0 && !isX) lo -= room;
      var range = ax.range[0] <= ax.range[1] ? [lo, hi] : [hi, lo];
      layout[name + ".range"] = range;
      layout[name + ".autorange"] = false;
    });
    return layout;
  };
})();
