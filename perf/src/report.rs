//! Reports: a human table on stdout, a JSON file, and SVG charts beside it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Percentiles every latency report gives, in microseconds.
pub fn latency_json(hist: &Histogram<u64>) -> Value {
    json!({
        "count": hist.len(),
        "p50_us": hist.value_at_quantile(0.50),
        "p90_us": hist.value_at_quantile(0.90),
        "p99_us": hist.value_at_quantile(0.99),
        "p999_us": hist.value_at_quantile(0.999),
        "max_us": hist.max(),
    })
}

pub fn latency_row(hist: &Histogram<u64>) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
        ms(hist.value_at_quantile(0.5)),
        ms(hist.value_at_quantile(0.9)),
        ms(hist.value_at_quantile(0.99)),
        ms(hist.value_at_quantile(0.999)),
        ms(hist.max())
    )
}

/// Prints `rows` as an aligned two-column table under `title`.
pub fn print_table(title: &str, rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    println!("\n== {title}");
    for (k, v) in rows {
        println!("  {k:<width$}  {v}");
    }
}

/// Writes `value` (plus the machine description) to `<out>/<name>.json`.
pub fn write_json(out: &Path, name: &str, mut value: Value) -> PathBuf {
    std::fs::create_dir_all(out).expect("report directory");
    if let Value::Object(map) = &mut value {
        map.insert("machine".into(), machine());
    }
    let path = out.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&value).expect("json")).expect("write report");
    println!("  report: {}", path.display());
    path
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "cpu": cpu,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

/// One line of a chart.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Latency by percentile (x: percentile on a log scale of 1/(1-p), y: ms) per series.
pub fn percentile_series(label: &str, hist: &Histogram<u64>) -> Series {
    let mut points = Vec::new();
    for nines in [
        0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999,
    ] {
        let x = (1.0f64 / (1.0 - nines)).log10();
        points.push((x, hist.value_at_quantile(nines) as f64 / 1000.0));
    }
    Series {
        label: label.to_string(),
        points,
    }
}

/// A small line chart as SVG (hand-written: no font or plotting dependency needed).
pub fn write_svg(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) {
    let (w, h, m) = (720.0, 420.0, 60.0);
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x_max, mut y_max) = (f64::MIN, f64::MIN);
    let (mut x_min, mut y_min) = (f64::MAX, 0.0f64);
    for &(x, y) in all {
        x_max = x_max.max(x);
        x_min = x_min.min(x);
        y_max = y_max.max(y);
        y_min = y_min.min(y);
    }
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }
    if y_max <= y_min {
        y_max = y_min + 1.0;
    }
    let sx = |x: f64| m + (x - x_min) / (x_max - x_min) * (w - 2.0 * m);
    let sy = |y: f64| h - m - (y - y_min) / (y_max - y_min) * (h - 2.0 * m);
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="20" text-anchor="middle" font-size="15">{title}</text><line x1="{m}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{m}" y1="{m}" x2="{m}" y2="{}" stroke="black"/><text x="{}" y="{}" text-anchor="middle">{x_label}</text><text x="15" y="{}" transform="rotate(-90 15 {})" text-anchor="middle">{y_label}</text>"#,
        w / 2.0,
        h - m,
        w - m,
        h - m,
        h - m,
        w / 2.0,
        h - 15.0,
        h / 2.0,
        h / 2.0
    );
    for i in 0..=4 {
        let fy = y_min + (y_max - y_min) * i as f64 / 4.0;
        let fx = x_min + (x_max - x_min) * i as f64 / 4.0;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{:.2}</text><text x="{}" y="{}" text-anchor="middle">{:.2}</text>"#,
            m - 5.0,
            sy(fy) + 4.0,
            fy,
            sx(fx),
            h - m + 15.0,
            fx
        );
    }
    for (i, s) in series.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/><text x="{}" y="{}" fill="{colour}">{}</text>"#,
            points.join(" "),
            w - m - 150.0,
            m + 15.0 * i as f64,
            s.label
        );
    }
    svg.push_str("</svg>\n");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("chart directory");
    }
    std::fs::write(path, svg).expect("write chart");
    println!("  chart:  {}", path.display());
}

/// A progress line on stderr (`\r`-refreshed every second) while a bounded phase runs;
/// dropping it ends the line.
pub struct Progress {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts a progress line for a phase expected to last `expected` seconds.
pub fn progress(label: &str, expected: f64) -> Progress {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let label = label.to_string();
    let thread = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        while !flag.load(Ordering::Relaxed) {
            eprint!(
                "\r  {label}: {:.0} / {expected:.0} s ",
                started.elapsed().as_secs_f64()
            );
            for _ in 0..10 {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        eprintln!(
            "\r  {label}: done in {:.1} s   ",
            started.elapsed().as_secs_f64()
        );
    });
    Progress {
        stop,
        thread: Some(thread),
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
