//! What a long command shows while it works: a progress bar per epoch on stderr and one line
//! per epoch on stdout (or JSON lines), and the Ctrl-C flag that stops a run cleanly.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use cnnzoo::train::{EpochMetrics, Reporter, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

/// Progress bar per epoch on stderr, one line per epoch on stdout (or JSON lines).
pub struct Console {
    bar: Option<ProgressBar>,
    json: bool,
    epochs_on_stderr: bool,
}

impl Console {
    /// A console reporter; no bar when `quiet` or `json`.
    pub fn new(quiet: bool, json: bool) -> Self {
        let bar = (!quiet && !json).then(|| {
            let bar = ProgressBar::new(1);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Self { bar, json, epochs_on_stderr: false }
    }

    /// Epoch lines go to stderr (stdout carries the command's report).
    pub fn epochs_on_stderr(mut self) -> Self {
        self.epochs_on_stderr = true;
        self
    }
}

impl Reporter for Console {
    fn batch(&mut self, epoch: usize, done: usize, total: usize, loss: f64, acc: f64, ips: f64) {
        let Some(bar) = &self.bar else { return };
        if done == 1 || bar.length() != Some(total as u64) {
            bar.reset();
            bar.set_length(total as u64);
            bar.set_prefix(format!("epoch {}", epoch + 1));
        }
        bar.set_position(done as u64);
        bar.set_message(format!("loss {loss:.3}  acc {acc:.3}  {ips:.0} img/s"));
    }

    fn epoch(&mut self, config: &TrainConfig, m: &EpochMetrics) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.json {
            println!("{}", serde_json::to_string(m).unwrap_or_default());
        } else {
            let line = format!(
                "epoch {:>2}/{}  train loss {:.3}  train acc {:.3}  test acc {:.3}  {:.1} s  {:.0} img/s",
                m.epoch,
                config.epochs,
                m.train_loss,
                m.train_acc,
                m.test_acc,
                m.train_seconds,
                m.images_per_sec
            );
            if self.epochs_on_stderr { eprintln!("{line}") } else { println!("{line}") }
        }
    }

    fn note(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }
}

/// A flag set by Ctrl-C (a second Ctrl-C exits at once).
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this batch (Ctrl-C again to abort without saving)");
    });
    interrupt
}
