// Drawing helpers of the Insights charts (insights.js): fill patterns, so that no series is
// told by colour alone, value labels on the bars, and the options every chart shares.
"use strict";

const PATTERNS = ["solid", "diagonal", "dots", "horizontal", "cross", "vertical", "back",
  "grid", "zigzag"];

function pattern(color, kind) {
  if (kind === "solid") return color;
  const tile = document.createElement("canvas");
  tile.width = tile.height = 10;
  const c = tile.getContext("2d");
  c.fillStyle = color;
  c.fillRect(0, 0, 10, 10);
  c.strokeStyle = c.fillStyle = "rgba(255,255,255,.85)";
  c.lineWidth = 2;
  const line = (x1, y1, x2, y2) => {
    c.beginPath();
    c.moveTo(x1, y1);
    c.lineTo(x2, y2);
    c.stroke();
  };
  if (kind === "diagonal") { line(0, 10, 10, 0); line(-5, 5, 5, -5); line(5, 15, 15, 5); }
  if (kind === "back") { line(0, 0, 10, 10); line(-5, 5, 5, 15); line(5, -5, 15, 5); }
  if (kind === "dots") { c.beginPath(); c.arc(5, 5, 2, 0, 2 * Math.PI); c.fill(); }
  if (kind === "horizontal" || kind === "grid") line(0, 5, 10, 5);
  if (kind === "vertical" || kind === "grid") line(5, 0, 5, 10);
  if (kind === "cross") { line(0, 0, 10, 10); line(0, 10, 10, 0); }
  if (kind === "zigzag") { line(0, 7, 5, 3); line(5, 3, 10, 7); }
  return c.createPattern(tile, "repeat");
}

function shortLabel(text) {
  return text.length > 26 ? `${text.slice(0, 25)}…` : text;
}


// Value labels on the bars (the totals of a stacked chart), drawn by Chart.js after the bars.
const valueLabels = {
  id: "valueLabels",
  afterDatasetsDraw(chart, _args, options) {
    const spec = options && options.spec;
    if (!spec) return;
    const ctx = chart.ctx;
    ctx.save();
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#1d2129";
    const metas = chart.getSortedVisibleDatasetMetas();
    const draw = (text, bar) => {
      if (!text || !bar) return;
      if (spec.horizontal) {
        ctx.textAlign = "left";
        ctx.textBaseline = "middle";
        ctx.fillText(text, bar.x + 4, bar.y);
      } else {
        ctx.textAlign = "center";
        ctx.textBaseline = "bottom";
        ctx.fillText(text, bar.x, bar.y - 2);
      }
    };
    if (spec.stacked) {
      chart.data.labels.forEach((_, i) => {
        const values = metas.map((m) => chart.data.datasets[m.index].data[i] || 0);
        const total = values.reduce((sum, v) => sum + v, 0);
        const top = metas.filter((m) => chart.data.datasets[m.index].data[i]).pop();
        if (total) draw(spec.format(total, i), top.data[i]);
      });
    } else {
      for (const meta of metas) {
        meta.data.forEach((bar, i) => {
          const value = chart.data.datasets[meta.index].data[i];
          if (value !== null && value !== undefined) draw(spec.format(value, i, meta.index), bar);
        });
      }
    }
    ctx.restore();
  },
};

function chartOptions(spec) {
  const value = spec.horizontal ? "x" : "y";
  const category = spec.horizontal ? "y" : "x";
  return {
    indexAxis: spec.horizontal ? "y" : "x",
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    layout: { padding: { top: 16, right: spec.horizontal ? 110 : 8 } },
    scales: {
      [value]: { beginAtZero: true, stacked: Boolean(spec.stacked), max: spec.max,
        title: { display: Boolean(spec.yTitle), text: spec.yTitle } },
      [category]: { stacked: Boolean(spec.stacked),
        ticks: {
          autoSkip: !spec.horizontal,
          callback(v) { return shortLabel(String(this.getLabelForValue(v))); },
        } },
    },
    plugins: {
      legend: { display: spec.datasets.length > 1, position: "bottom" },
      valueLabels: { spec },
    },
  };
}
