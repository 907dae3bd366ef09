/*
 * Which plotly.js the graphs load. dcc.Graph loads plotly.js from window._dashPlotlyJSURL the
 * first time one draws; point it at the vendored bundle (scatter, bar, heatmap: every trace
 * type these pages draw; see assets/README.md), not Dash's full 4.8 MB bundle.
 * Kept in step with PLOTLY_BUNDLE in dashboard/app.py (a test checks both).
 */
(function () {
  "use strict";

  var PLOTLY_BUNDLE = "assets/plotly-tuneloom-4.1.1.min.js";
  var plotlyUrl = null;
  Object.defineProperty(window, "_dashPlotlyJSURL", {
    configurable: true,
    get: function () { return plotlyUrl; },
    set: function (url) {
      var prefix = String(url).split("_dash-component-suites/")[0];
      plotlyUrl = prefix + PLOTLY_BUNDLE;
    },
  });
})();
