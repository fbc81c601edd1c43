/* The dashboard's chart: spend or requests per UTC day, stacked by model (Chart.js, vendored in static/vendor). */
(function () {
  "use strict";
  var canvas = document.getElementById("usage-chart-canvas");
  if (!canvas || !window.Chart) return;
  var data = JSON.parse(document.getElementById("usage-chart-data").textContent);
  var labels = document.getElementById("usage-chart-labels").dataset;
  var palette = ["#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#14b8a6", "#f97316", "#64748b", "#ec4899"];
  var metric = "cost";

  function datasets() {
    return data.models.map(function (m, i) {
      return {
        label: m.name,
        data: metric === "cost" ? m.cost.map(Number) : m.requests,
        raw: metric === "cost" ? m.cost : m.requests,
        backgroundColor: palette[i % palette.length],
        borderRadius: 3,
        maxBarThickness: 28,
      };
    });
  }

  function money(text) {
    // Exact USD strings from the server; show cents, or more digits when below a cent.
    var n = Number(text);
    if (n !== 0 && Math.abs(n) < 0.01) return "$" + text;
    return "$" + n.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  var chart = new window.Chart(canvas, {
    type: "bar",
    data: { labels: data.days.map(function (d) { return d.slice(5); }), datasets: datasets() },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true, grid: { display: false }, ticks: { autoSkip: true, maxRotation: 0 } },
        y: {
          stacked: true, beginAtZero: true,
          title: { display: true, text: labels.cost },
          // Cost ticks: cents from $1 up, two significant digits below (so $0.008, $0.01, $0.012 stay distinct).
          ticks: { callback: function (v) { return metric === "cost" ? "$" + (v >= 1 || v === 0 ? Number(v).toFixed(2) : String(Number(Number(v).toPrecision(2)))) : v; } },
        },
      },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 12 } },
        tooltip: {
          filter: function (item) { return Number(item.raw) !== 0; },
          callbacks: {
            title: function (items) { return items.length ? data.days[items[0].dataIndex] + " " + labels.utc : ""; },
            label: function (item) {
              var raw = item.dataset.raw[item.dataIndex];
              return " " + item.dataset.label + ": " + (metric === "cost" ? money(raw) : raw);
            },
            footer: function (items) {
              var total = 0;
              items.forEach(function (it) { total += Number(it.dataset.raw[it.dataIndex]); });
              return labels.total + ": " + (metric === "cost" ? money(total.toFixed(9).replace(/0+$/, "").replace(/\.$/, "")) : total);
            },
          },
        },
      },
    },
  });

  document.querySelectorAll(".usage-chart [data-metric]").forEach(function (button) {
    button.addEventListener("click", function () {
      metric = button.dataset.metric;
      document.querySelectorAll(".usage-chart [data-metric]").forEach(function (b) {
        var on = b === button;
        b.classList.toggle("secondary", !on);
        b.setAttribute("aria-pressed", on ? "true" : "false");
      });
      chart.data.datasets = datasets();
      chart.options.scales.y.title.text = metric === "cost" ? labels.cost : labels.requests;
      chart.update();
    });
  });
  window.usageChart = chart;
})();
