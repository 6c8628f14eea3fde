//! Faults of the machine during training: SIGKILL at random moments (checkpoint writes
//! included), a full disk, a run directory deleted under a running process. Each leaves a run
//! directory that loads and resumes from its last complete checkpoint — and a run killed again
//! and again ends with the same metrics, bit for bit, as one never killed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist-subset")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// LeNet-BN on 512 fixture images, 16 batches per epoch, a checkpoint after every batch.
fn args<'a>(run: &'a str, data: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "d2l_lenet_bn",
        "--data",
        data,
        "--epochs",
        "2",
        "--subset",
        "512",
        "--batch-size",
        "32",
        "--test-subset",
        "100",
        "--checkpoint-every",
        "1",
        "--out",
        run,
        "--quiet",
    ]
}

fn resume_args(run: &str) -> Vec<&str> {
    vec!["train", "--resume", run, "--checkpoint-every", "1", "--quiet"]
}

fn cnnzoo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnzoo")).args(args).output().expect("run cnnzoo")
}

/// Whatever state a run directory is left in, it loads: its config parses, and its checkpoint
/// pointer (if any) names a complete checkpoint whose weights load.
fn assert_loadable(run: &Path, after: &str) {
    if !run.join("config.json").exists() {
        return; // killed before the run began: nothing to resume, nothing broken
    }
    let device = burn::tensor::Device::flex();
    let config = cnnzoo::train::read_config(run).unwrap_or_else(|e| panic!("{after}: config: {e}"));
    match cnnzoo::train::latest_checkpoint(run) {
        Ok(Some((ckpt, _))) => {
            cnnzoo::train::load_model(&config.model_config, &ckpt.join("model.bpk"), &device)
                .unwrap_or_else(|e| panic!("{after}: checkpoint weights: {e}"));
        }
        Ok(None) => {}
        Err(e) => panic!("{after}: checkpoint pointer: {e}"),
    }
}

/// Starts a run in `run` and SIGKILLs it once its first checkpoint is complete.
fn killed_after_a_checkpoint(run: &Path, data: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnnzoo"))
        .args(args(run.to_str().unwrap(), data.to_str().unwrap()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while cnnzoo::train::latest_checkpoint(run).ok().flatten().is_none() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint was written");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_run_killed_dozens_of_times_ends_as_if_never_killed() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture();
    let data = data.to_str().unwrap();
    let straight = dir.path().join("straight");
    // The straight run, timed: how long a life takes to its first checkpoint (start-up) and to
    // the end.
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnnzoo"))
        .args(args(straight.to_str().unwrap(), data))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut t_first = None;
    let status = loop {
        if t_first.is_none() && straight.join("checkpoint.json").exists() {
            t_first = Some(t0.elapsed());
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(status.success());
    let t_run = t0.elapsed();
    let t_first = t_first.unwrap_or(t_run);
    // Kills land between 5 ms and a little after a life's start-up: most lives get a few
    // batches done (or none), so the run takes dozens of lives to finish.
    let window = (t_first + (t_run.saturating_sub(t_first)) / 40).as_millis() as u64 + 10;

    let run = dir.path().join("killed");
    let run_s = run.to_str().unwrap();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let (mut kills, mut lives) = (0, 0);
    loop {
        lives += 1;
        let argv = if run.join("config.json").exists() { resume_args(run_s) } else { args(run_s, data) };
        let mut child = Command::new(env!("CARGO_BIN_EXE_cnnzoo"))
            .args(&argv)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Random moments over a process's life (start-up, batches, checkpoint writes, the
        // evaluation); after 30 kills the run is let finish.
        let delay = Duration::from_millis(5 + rng % window);
        let start = Instant::now();
        let mut finished = None;
        while start.elapsed() < delay || kills >= 30 {
            if let Some(status) = child.try_wait().unwrap() {
                finished = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        match finished {
            Some(status) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "life {lives} failed: {err}");
                break;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                assert_loadable(&run, &format!("kill {kills}"));
            }
        }
        assert!(lives < 200, "the run never finished");
    }
    assert!(
        kills >= 24,
        "only {kills} kills landed (a straight run takes {t_run:?}, {t_first:?} to its first checkpoint)"
    );
    let metrics = |r: &Path| std::fs::read_to_string(r.join("metrics.csv")).unwrap();
    let numbers = |csv: String| -> Vec<Vec<String>> {
        // epoch, train loss, train acc, test acc, lr — not the timings.
        csv.lines().map(|l| l.split(',').take(5).map(str::to_string).collect()).collect()
    };
    assert_eq!(numbers(metrics(&run)), numbers(metrics(&straight)), "after {kills} kills");
    let state = |r: &Path| {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(r.join("checkpoint.json")).unwrap()).unwrap();
        v["state"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["train_loss"].as_f64(), m["train_acc"].as_f64(), m["test_acc"].as_f64()))
            .collect::<Vec<_>>()
    };
    // Full precision: the losses summed over every resumed life equal the straight run's.
    assert_eq!(state(&run), state(&straight), "after {kills} kills");
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_last_checkpoint_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    // A first life that checkpoints, stopped by SIGKILL once a checkpoint exists.
    killed_after_a_checkpoint(&run, &data);
    // The resumed life may write files of at most 64 KiB (`ulimit -f 128`, 512-byte blocks in
    // dash): the next checkpoint's weights (~250 KB) do not fit. With SIGXFSZ ignored, as a
    // process on a full disk sees it, the write fails with an error instead of a signal.
    let script = "trap '' XFSZ; ulimit -f 128; exec \"$0\" \"$@\"";
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_cnnzoo"))
        .args(resume_args(run_s))
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("checkpoint-") && err.contains("model.bpk"), "the error names the file: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_loadable(&run, "the failed write");
    let leftovers: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint-"))
        .collect();
    assert_eq!(leftovers.len(), 1, "only the complete checkpoint remains: {leftovers:?}");
    // With room again, the run resumes and finishes.
    let out = cnnzoo(&resume_args(run_s));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(run.join("metrics.csv")).unwrap().lines().count(), 3);
}

#[test]
fn a_run_directory_deleted_under_a_running_process_stops_it_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture();
    let run = dir.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_cnnzoo"))
        .args(args(run.to_str().unwrap(), data.to_str().unwrap()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !run.join("checkpoint.json").exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint was written");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The process keeps writing while the directory goes: remove until it is gone.
    while run.exists() {
        let _ = std::fs::remove_dir_all(&run);
    }
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("lost its config.json while training") || err.contains("No such file"), "{err}");
    assert!(!run.join("checkpoint.json").exists(), "no half run directory is recreated");

    // A checkpoint deleted while a run is stopped: resuming names what is missing.
    let run2 = dir.path().join("run2");
    let out = cnnzoo(&args(run2.to_str().unwrap(), data.to_str().unwrap()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (ckpt, _) = cnnzoo::train::latest_checkpoint(&run2).unwrap().unwrap();
    std::fs::remove_dir_all(&ckpt).unwrap();
    std::fs::remove_file(run2.join("model.bpk")).unwrap();
    let out = cnnzoo(&resume_args(run2.to_str().unwrap()));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("which is gone"), "{err}");
}

#[test]
fn a_read_only_run_directory_is_a_clear_error_and_resumes_once_writable() {
    // The directory is made read-only by a bind mount inside a private mount namespace
    // (`unshare`), so nothing outlives the process — and root, for whom permissions do not
    // apply, sees a read-only file system too.
    let probe = Command::new("unshare").args(["-rm", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: `unshare -rm` is not available here (no user namespaces)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = fixture();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    killed_after_a_checkpoint(&run, &data);
    let script = "mount --bind \"$1\" \"$1\" && mount -o remount,ro,bind \"$1\" && exec \"$0\" train --resume \"$1\" --quiet";
    let out = Command::new("unshare")
        .args(["-rm", "sh", "-c", script, env!("CARGO_BIN_EXE_cnnzoo"), run_s])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(run_s) && err.contains("Read-only file system"), "{err}");
    assert_loadable(&run, "the read-only attempt");
    let out = cnnzoo(&resume_args(run_s));
    assert!(out.status.success(), "{}", text(&out.stderr));
}
