// KPI charts of one order (uPlot, vendored in web/vendor): two-sided uptime, quoted spread, depth, PnL.
// A sample is one row of GET /api/v1/orders/{id}/kpi; amounts arrive as decimal strings.

// What each chart plots: a title and its lines (sample field, legend label, colour, scale factor).
// Field names are domain/kpi.py Sample.as_dict's (uptime already in percent; PnL spelt "realised").
const CHARTS = [
  {title: "Two-sided uptime (%)", lines: [["uptime_pct", "uptime %", "#1b7f3b", 1]]},
  {title: "Quoted spread (bps)", lines: [["spread_bps", "spread bps", "#2456a6", 1]]},
  {title: "Depth within ±2 % of mid (quote)", lines: [["depth_bid", "bid side", "#1b7f3b", 1],
                                                       ["depth_ask", "ask side", "#b3261e", 1]]},
  {title: "PnL (quote)", lines: [["realised_pnl", "realised", "#2456a6", 1],
                                 ["unrealised_pnl", "unrealised", "#8a5a00", 1]]},
];
const TIME_FIELDS = ["ts_epoch", "ts"];

/** Epoch seconds of a sample's time (ISO string or number), or null. */
function sampleTime(sample) {
  for (const field of TIME_FIELDS) {
    const value = sample[field];
    if (value === undefined || value === null) continue;
    const seconds = typeof value === "number" ? value : Date.parse(value) / 1000;
    if (Number.isFinite(seconds)) return seconds;
  }
  return null;
}

function number(value, factor) {
  const n = value === null || value === undefined || value === "" ? NaN : Number(value);
  return Number.isFinite(n) ? n * factor : null;
}

/** Draws the charts into `container` (replacing what was there); returns a function that removes them. */
export function drawKpiCharts(container, samples) {
  container.replaceChildren();
  const points = samples.map((s) => [sampleTime(s), s]).filter(([t]) => t !== null).sort((a, b) => a[0] - b[0]);
  container.dataset.samples = String(points.length);
  // A line needs two points (one alone gives a time axis of years around it).
  if (points.length < 2 || typeof window.uPlot !== "function") {
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = points.length >= 2 ? "Charts unavailable (chart library not loaded)."
      : "Charts appear once two KPI samples are in.";
    container.append(note);
    return () => {};
  }
  const xs = points.map(([t]) => t);
  const plots = [];
  for (const chart of CHARTS) {
    const figure = document.createElement("figure");
    figure.className = "chart";
    figure.setAttribute("aria-label", chart.title);
    const caption = document.createElement("figcaption");
    caption.textContent = chart.title;
    figure.append(caption);
    container.append(figure);
    const data = [xs, ...chart.lines.map(([field, , , factor]) => points.map(([, s]) => number(s[field], factor)))];
    const options = {
      width: chartWidth(container),
      height: 170,
      scales: {x: {time: true}},
      series: [{}, ...chart.lines.map(([, label, stroke]) => ({label, stroke, width: 2, spanGaps: true,
                                                                points: {show: points.length <= 60}}))],
      axes: [{}, {size: 60}],
    };
    plots.push(new window.uPlot(options, data, figure));
  }
  const resize = () => plots.forEach((p) => p.setSize({width: chartWidth(container), height: 170}));
  window.addEventListener("resize", resize);
  return () => {
    window.removeEventListener("resize", resize);
    plots.forEach((p) => p.destroy());
  };
}

function chartWidth(container) {
  // Two charts side by side on a wide screen, one per row on a phone (see .charts in app.css).
  const width = container.clientWidth || 600;
  return Math.max(260, Math.floor(width >= 760 ? width / 2 - 24 : width - 8));
}
