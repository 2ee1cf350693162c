//! A disk that fills up or turns read-only (issue 16, item 6): deliveries get 500 (the
//! provider retries), `/health` says 503 and why, the operator is told once, and when the
//! disk is back everything resumes with nothing lost or half-applied.
//!
//! The database lives on a small tmpfs that the test mounts (it needs root, as in CI; set
//! `DOCOBO_TEST_MOUNTS=1` to make a failed mount an error instead of a skip).

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use docobo_testkit::FakeDiscord;
use docobo_testkit::app::TestApp;
use docobo_testkit::load::{Target, message_id, subscription_body};
use docobo_testkit::webhooks::PolarKey;

use crate::helpers::{load_shop, log_lines};

/// A tmpfs of `size` mounted on a temporary folder; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (after saying why) where this user may not mount.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("mount point");
        let options = format!("size={size}");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Self { dir }),
            other => {
                let why = format!("cannot mount a tmpfs (root needed): {other:?}");
                assert!(
                    std::env::var_os("DOCOBO_TEST_MOUNTS").is_none_or(|v| v != "1"),
                    "{why}"
                );
                eprintln!("SKIPPED: {why}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// An ext4 file system on a loop device, mounted `errors=remount-ro` as a Pi's root is: an
/// error (a failing SD card) turns it read-only at once.
struct Ext4 {
    image: tempfile::TempDir,
    dir: tempfile::TempDir,
}

impl Ext4 {
    /// `None` (after saying why) where this user may not mount.
    fn mount() -> Option<Self> {
        let image = tempfile::tempdir().expect("image folder");
        let file = image.path().join("disk.img");
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(64 << 20))
            .expect("image");
        let made = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&file)
            .status();
        let disk = Self {
            image,
            dir: tempfile::tempdir().expect("mount point"),
        };
        match made {
            Ok(status) if status.success() && disk.attach() => Some(disk),
            other => {
                let why =
                    format!("cannot make and mount an ext4 loop device (root needed): {other:?}");
                assert!(
                    std::env::var_os("DOCOBO_TEST_MOUNTS").is_none_or(|v| v != "1"),
                    "{why}"
                );
                eprintln!("SKIPPED: {why}");
                None
            }
        }
    }

    fn attach(&self) -> bool {
        Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(self.image.path().join("disk.img"))
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The kernel's own test hook: ext4 records an error and, with `errors=remount-ro`,
    /// turns the file system read-only, as it does when the card fails.
    fn fail(&self) {
        let source = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(self.dir.path())
            .output()
            .expect("findmnt");
        let device = String::from_utf8_lossy(&source.stdout).trim().to_owned();
        let name = Path::new(&device).file_name().expect("a device");
        std::fs::write(
            Path::new("/sys/fs/ext4")
                .join(name)
                .join("trigger_fs_error"),
            "1",
        )
        .expect("trigger an ext4 error");
    }

    /// What the owner does: unmount, `e2fsck -fy`, mount again.
    fn repair(&self) {
        // The stopped app's database threads close their files within moments.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !Command::new("umount")
            .arg(self.dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(std::time::Instant::now() < deadline, "umount: still busy");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // 0: clean, 1: errors corrected.
        let checked = Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(self.image.path().join("disk.img"))
            .output()
            .expect("e2fsck");
        assert!(
            matches!(checked.status.code(), Some(0 | 1)),
            "e2fsck: {}",
            String::from_utf8_lossy(&checked.stdout)
        );
        assert!(self.attach(), "mount again");
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system holding `dir` with one file, until it is full.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0_u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    // A last partial chunk: byte by byte is too slow; halve until nothing fits.
    let mut size = chunk.len() / 2;
    while size > 0 {
        if file.write_all(&chunk[..size]).is_err() {
            size /= 2;
        }
    }
    let _ = file.sync_all();
    filler
}

/// Posts delivery `n`; its status.
async fn post(app: &TestApp, target: &Target, n: usize) -> u16 {
    let body = subscription_body(n, target.guild, &target.product);
    PolarKey::utf8(&target.secret)
        .delivery_now(&message_id(n), body)
        .request(&app.client, &target.url)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn health(app: &TestApp) -> (u16, String) {
    let (status, body) = crate::helpers::health(app).await;
    (
        status,
        body["database"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Deliveries `from..` until `failures` of them were refused (at most `limit` sent);
/// returns (acknowledged, refused).
async fn post_until_refused(
    app: &TestApp,
    target: &Target,
    from: usize,
    limit: usize,
) -> (Vec<usize>, Vec<usize>) {
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for n in from..from + limit {
        match post(app, target, n).await {
            202 => acked.push(n),
            500 => refused.push(n),
            other => panic!("delivery {n}: unexpected {other}"),
        }
        if refused.len() >= 5 {
            break;
        }
    }
    (acked, refused)
}

/// Every acknowledged delivery is there once, with its one subscription, and the file is
/// intact.
async fn assert_all_there_once(app: &TestApp, delivered: &[usize]) {
    let ids: Vec<String> = delivered.iter().map(|n| message_id(*n)).collect();
    let (integrity, events, subscriptions) = app
        .db
        .read(move |conn| {
            let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
            let mut events = conn.prepare("SELECT external_event_id FROM webhook_events")?;
            let events: Vec<String> = events
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let subscriptions: i64 =
                conn.query_row("SELECT count(*) FROM subscriptions", [], |r| r.get(0))?;
            Ok((integrity, events, subscriptions))
        })
        .await
        .expect("read");
    assert_eq!(integrity, "ok");
    let unique: HashSet<&String> = events.iter().collect();
    assert_eq!(unique.len(), events.len(), "a delivery recorded twice");
    for id in &ids {
        assert!(unique.contains(id), "{id} was acknowledged but is missing");
    }
    assert_eq!(
        events.len(),
        ids.len(),
        "deliveries recorded that were not sent"
    );
    assert_eq!(
        subscriptions,
        i64::try_from(ids.len()).expect("count"),
        "one subscription per delivery"
    );
}

/// The operator's incoming webhook at the fake Discord (`alerts.operator_webhook_url`).
const HOOK: u64 = 7_700_000_000_000_000_002;

/// The app on a database inside `dir`, with the shop set up and `warm` deliveries made; its
/// operator alerts go to the fake Discord's webhook [`HOOK`].
async fn app_on(dir: &Path, warm: usize) -> (TestApp, Target, Arc<FakeDiscord>) {
    crate::helpers::install_global_log();
    let discord = Arc::new(FakeDiscord::builder().start().await.expect("fake Discord"));
    let app = TestApp::builder()
        .discord(Arc::clone(&discord))
        .env(
            "DOCOBO_DATABASE__PATH",
            &dir.join("docobo.db").display().to_string(),
        )
        .env("DOCOBO_SERVER__RATE_LIMIT_PER_MINUTE", "0")
        .env(
            "DOCOBO_ALERTS__OPERATOR_WEBHOOK_URL",
            &discord.incoming_webhook(HOOK, "disk-hook-token"),
        )
        .start()
        .await;
    let target = load_shop(&app).await;
    for n in 0..warm {
        assert_eq!(post(&app, &target, n).await, 202, "warm-up {n}");
    }
    assert_eq!(health(&app).await, (200, "ok".to_owned()));
    (app, target, discord)
}

/// The operator alerts that contain `needle`, waiting (up to 10 s) for at least one.
async fn operator_alerts(discord: &FakeDiscord, needle: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found: Vec<String> = discord
            .webhook_executions(HOOK)
            .iter()
            .filter_map(|b| b["content"].as_str().map(str::to_owned))
            .filter(|m| m.contains(needle))
            .collect();
        if !found.is_empty() || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn told(path: &Path) -> usize {
    let path = path.display().to_string();
    log_lines()
        .iter()
        .filter(|l| l.contains("the database cannot be written") && l.contains(&path))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_deliveries_until_space_returns_and_loses_nothing() {
    let Some(mount) = Tmpfs::mount("8m") else {
        return;
    };
    let (app, target, discord) = app_on(mount.path(), 20).await;
    let mut delivered: Vec<usize> = (0..20).collect();

    let filler = fill(mount.path());
    let (acked, refused) = post_until_refused(&app, &target, 20, 5_000).await;
    delivered.extend(&acked);
    assert!(!refused.is_empty(), "a full disk refused nothing");
    let (status, database) = health(&app).await;
    assert_eq!(status, 503, "{database}");
    assert!(database.contains("disk is full"), "{database}");
    assert_eq!(told(&mount.path().join("docobo.db")), 1, "told once");
    // And to the operator's Discord webhook, once, with the fix.
    let alerts = operator_alerts(&discord, "Database cannot be written").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].contains("the disk is full") && alerts[0].contains("df -h"),
        "{alerts:?}"
    );

    std::fs::remove_file(filler).expect("free the space");
    // The provider retries what was refused.
    for n in &refused {
        assert_eq!(post(&app, &target, *n).await, 202, "retry of {n}");
    }
    delivered.extend(&refused);
    // Healthy again once writes have succeeded for a few seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while health(&app).await != (200, "ok".to_owned()) {
        assert!(std::time::Instant::now() < deadline, "never healthy again");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(
        crate::helpers::log_lines()
            .iter()
            .any(|l| l.contains("can be written again")
                && l.contains(&mount.path().display().to_string())),
        "the operator is told it resumed"
    );
    assert_all_there_once(&app, &delivered).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_system_turned_read_only_refuses_deliveries_and_keeps_every_acknowledged_one() {
    let Some(disk) = Ext4::mount() else {
        return;
    };
    let (app, target, _discord) = app_on(disk.path(), 20).await;
    let mut delivered: Vec<usize> = (0..20).collect();

    disk.fail();
    let (acked, refused) = post_until_refused(&app, &target, 20, 200).await;
    delivered.extend(&acked);
    assert!(!refused.is_empty(), "a read-only disk refused nothing");
    let (status, database) = health(&app).await;
    assert_eq!(status, 503, "{database}");
    assert!(database.starts_with("not writable"), "{database}");
    assert_eq!(told(&disk.path().join("docobo.db")), 1, "told once");

    // The owner stops Docobo, repairs the file system and starts it again; the provider
    // retries what was refused. What was acknowledged before the failure is all there.
    let stopped = app.stop().await;
    disk.repair();
    let app = stopped.start().await;
    for n in &refused {
        assert_eq!(
            post(&app, &target_at(&app, &target), *n).await,
            202,
            "retry of {n}"
        );
    }
    delivered.extend(&refused);
    assert_eq!(health(&app).await, (200, "ok".to_owned()));
    assert_all_there_once(&app, &delivered).await;
    app.stop().await;
}

/// The shop's target on a restarted app (another port).
fn target_at(app: &TestApp, target: &Target) -> Target {
    let path = target
        .url
        .split_once("/webhooks/")
        .map(|(_, rest)| format!("/webhooks/{rest}"))
        .expect("a webhook URL");
    Target {
        url: app.url(&path),
        ..target.clone()
    }
}
