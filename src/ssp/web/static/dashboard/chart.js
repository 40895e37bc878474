// The per-minute bar chart as inline SVG, drawn with DOM APIs (no chart library, no innerHTML).
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600, HEIGHT = 180, LEFT = 34, BOTTOM = 22, TOP = 8;

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

export function drawPerMinute(svg, points) {
  const max = Math.max(1, ...points.map((p) => p.count));
  const plotWidth = WIDTH - LEFT, plotHeight = HEIGHT - BOTTOM - TOP;
  const step = plotWidth / Math.max(1, points.length);
  const children = [
    svgElement("line", { x1: LEFT, y1: TOP + plotHeight, x2: WIDTH, y2: TOP + plotHeight, class: "axis" }),
    svgElement("text", { x: LEFT - 4, y: TOP + 10, class: "tick", "text-anchor": "end" }, String(max)),
    svgElement("text", { x: LEFT - 4, y: TOP + plotHeight, class: "tick", "text-anchor": "end" }, "0"),
  ];
  points.forEach((point, i) => {
    const height = (point.count / max) * plotHeight;
    const bar = svgElement("rect", {
      x: LEFT + i * step + step * 0.1, y: TOP + plotHeight - height,
      width: Math.max(1, step * 0.8), height, class: "bar", "data-count": point.count,
    });
    bar.append(svgElement("title", {}, `${point.minute.slice(11, 16)} UTC: ${point.count}`));
    children.push(bar);
    if (i % 10 === 0 || i === points.length - 1) {
      children.push(svgElement("text", {
        x: LEFT + i * step + step / 2, y: HEIGHT - 6, class: "tick", "text-anchor": "middle",
      }, point.minute.slice(11, 16)));
    }
  });
  svg.replaceChildren(...children);
}
