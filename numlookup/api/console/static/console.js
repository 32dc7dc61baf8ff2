// The console's own script: draws every <div class="chart" data-src="URL" data-series="…"> with uPlot.
// No inline script anywhere (the Content-Security-Policy forbids it): pages say what to draw in data- attributes.
//
// data-src answers JSON: {"x": [unix seconds, ...], "series": {"name": [numbers, ...], ...}}.
// data-series is a comma-separated list of the series to draw, each "name" or "name:Label".
// data-kind="bars" draws stepped bars instead of lines. The JSON drawn is kept on the element
// (element.chartData) so tests can compare it with the ledger.
(function () {
  "use strict";
  var COLOURS = ["#1f5fbf", "#1e7a3c", "#c77700", "#b3261e", "#6b3fa0", "#0f7c8c"];

  function parseSeries(text) {
    return (text || "").split(",").filter(Boolean).map(function (part) {
      var bits = part.split(":");
      return { key: bits[0].trim(), label: (bits[1] || bits[0]).trim() };
    });
  }

  // Charts drawn from one URL share one request.
  var loading = {};
  function load(src) {
    if (!loading[src]) {
      loading[src] = fetch(src, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error(src + " answered " + response.status); }
          return response.json();
        });
    }
    return loading[src];
  }

  function draw(element) {
    if (typeof uPlot === "undefined") { return; }
    var src = element.getAttribute("data-src");
    var wanted = parseSeries(element.getAttribute("data-series"));
    load(src)
      .then(function (data) {
        element.chartData = data;
        var body = element.querySelector(".plot") || element;
        body.textContent = "";
        var columns = [data.x];
        var series = [{}];
        wanted.forEach(function (s, i) {
          columns.push(data.series[s.key] || []);
          series.push({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2,
            fill: element.getAttribute("data-kind") === "bars" ? COLOURS[i % COLOURS.length] + "33" : undefined });
        });
        var width = Math.max(240, body.clientWidth || element.clientWidth || 320);
        var plot = new uPlot({ width: width, height: 220, series: series, scales: { x: { time: true } } }, columns, body);
        element.setAttribute("data-drawn", String(data.x.length));
        window.addEventListener("resize", function () {
          plot.setSize({ width: Math.max(240, body.clientWidth || element.clientWidth), height: 220 });
        });
      })
      .catch(function (error) {
        element.setAttribute("data-error", String(error));
        console.error(error);
      });
  }

  function drawAll(root) {
    Array.prototype.forEach.call((root || document).querySelectorAll("div.chart[data-src]"), draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  } else {
    drawAll(document);
  }
  document.addEventListener("htmx:afterSwap", function (event) { loading = {}; drawAll(event.target); });
})();
