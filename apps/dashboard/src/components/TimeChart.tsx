import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** A time series (uPlot): x in seconds since the epoch, one or more y series. */
export function TimeChart({ x, series, label, height = 160 }: { x: number[]; series: { name: string; values: number[]; color: string }[]; label: string; height?: number }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const div = el.current;
    if (!div) return;
    const plot = new uPlot(
      {
        width: Math.max(div.clientWidth, 280),
        height,
        legend: { show: series.length > 1 },
        scales: { x: { time: true } },
        series: [{}, ...series.map((s) => ({ label: s.name, stroke: s.color, fill: `${s.color}33`, width: 1.5, paths: uPlot.paths.stepped?.({ align: 1 }) }))],
        axes: [{}, { size: 50 }],
      },
      [x, ...series.map((s) => s.values)],
      div,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(div.clientWidth, 280), height }));
    resize.observe(div);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [x, series, height]);
  return <div ref={el} className="chart" role="img" aria-label={label} />;
}
