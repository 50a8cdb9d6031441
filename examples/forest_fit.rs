//! Trains one forest on raw little-endian files and writes its predictions, for the benchmark
//! against scikit-learn (`benches/forest_vs_sklearn.py`), which prepares the files, runs both
//! and compares quality and speed.
//!
//! forest_fit TASK N_FEATURES TRAIN_X TRAIN_Y TEST_X OUT_PRED N_TREES MAX_FEATURES THREADS
//! (X: f32 row-major; Y and predictions: f64; MAX_FEATURES: all | sqrt).
use sst1mflow::forest::{Forest, ForestParams, MaxFeatures, Task};
use std::time::Instant;

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert_eq!(
        a.len(),
        10,
        "usage: forest_fit TASK N_FEATURES TRAIN_X TRAIN_Y TEST_X OUT N_TREES MAX_FEATURES THREADS"
    );
    let task = if a[1] == "classifier" { Task::Classification } else { Task::Regression };
    let n_features: usize = a[2].parse().unwrap();
    let x: Vec<f32> = read(&a[3]).chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let y: Vec<f64> = read(&a[4]).chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
    let xt: Vec<f32> = read(&a[5]).chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let params = ForestParams {
        n_estimators: a[7].parse().unwrap(),
        max_depth: Some(30),
        min_samples_split: 10,
        min_samples_leaf: 10,
        min_impurity_decrease: 0.0,
        max_features: if a[8] == "sqrt" { MaxFeatures::Sqrt } else { MaxFeatures::All },
        bootstrap: true,
        max_samples: None,
        random_state: 42,
    };
    let threads: usize = a[9].parse().unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let t0 = Instant::now();
    let forest = pool.install(|| Forest::fit(&x, &y, n_features, task, &params)).expect("fit");
    let fit_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let pred = pool.install(|| forest.predict(&xt));
    let predict_s = t1.elapsed().as_secs_f64();
    let bytes: Vec<u8> = pred.iter().flat_map(|p| p.to_le_bytes()).collect();
    std::fs::write(&a[6], bytes).unwrap();
    let model = sst1mflow::forest::format::encode(&forest, &serde_json::json!({}));
    println!(
        "{{\"fit_s\": {fit_s:.3}, \"predict_s\": {predict_s:.3}, \"peak_rss_mb\": {:.1}, \"nodes\": {}, \"model_mb\": {:.2}}}",
        peak_rss_mb(),
        forest.n_nodes(),
        model.len() as f64 / 1e6
    );
}
