/** A uPlot line chart (canvas: 10k points draw in milliseconds); the element is role=img for screen readers and tests. */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export function Chart({
  data,
  label,
  unit,
  ariaLabel,
  xRange,
}: {
  data: [number[], number[]];
  label: string;
  unit?: string;
  ariaLabel: string;
  xRange?: [number, number];
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const width = () => Math.max(300, el.clientWidth || 600);
    const u = new uPlot(
      {
        width: width(),
        height: 280,
        series: [
          {},
          { label: unit ? `${label} (${unit})` : label, stroke: '#2563eb', width: 1.5, points: { show: false } },
        ],
        scales: { x: { time: true } },
        axes: [{}, { size: 60 }],
        cursor: { drag: { x: true, y: false } },
      },
      [[], []],
      el,
    );
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: width(), height: 280 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [label, unit]);
  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    u.setData(data);
    // The whole range asked for, not only the span of the points (a few points would look like years).
    if (xRange)
      u.setScale('x', {
        min: Math.min(xRange[0], data[0][0] ?? Infinity),
        max: Math.max(xRange[1], data[0][data[0].length - 1] ?? -Infinity),
      });
  }, [data, label, unit, xRange]);
  return <div ref={box} class="chart" role="img" aria-label={ariaLabel} data-points={String(data[0].length)} />;
}
