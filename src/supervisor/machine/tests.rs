//! The machine with synthetic events and a fake clock: no fork, no
//! signal, no sleep. Tests assert on actions and typed reports.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::*;
use crate::supervisor::events::{Action, Event, SlotId, StartFailure, Step, Upstream};
use crate::supervisor::report::{Next, Report, Why};
use crate::vocab::{ReadyMode, RestartPolicy, Signal, SignalRule, WaitTarget};

pub(super) fn program(n: u32, plain: bool) -> ProgramSettings {
    ProgramSettings {
        name: Arc::from(""),
        count: n,
        max_count: 8,
        policy: if plain {
            RestartPolicy::Never
        } else {
            RestartPolicy::Always
        },
        min_uptime: Duration::from_secs(2),
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_secs(10),
        crash_loop: 3,
        stop_signal: Signal::TERM,
        graceful_timeout: Duration::from_secs(8),
        ready: ReadyMode::Delay,
        ready_timeout: Duration::from_secs(60),
        watchdog: None,
        max_memory: None,
        max_age: None,
        age_jitter: 10.0,
        after: Vec::new(),
        critical: true,
    }
}

pub(super) fn settings(n: u32, plain: bool) -> Settings {
    Settings {
        plain,
        pid1: false,
        shutdown_delay: Duration::ZERO,
        graceful_timeout: Duration::from_secs(8),
        stop_signal: if plain { None } else { Some(Signal::TERM) },
        signal_map: Vec::new(),
        steps: Vec::new(),
        programs: vec![program(n, plain)],
        scale_program: 0,
        memory_high: None,
        memory_interval: Duration::from_secs(5),
        memory_limit: None,
    }
}

pub(super) fn pid(n: i32) -> Pid {
    Pid::from_raw(n)
}

pub(super) fn slot(n: u32) -> SlotId {
    SlotId {
        program: 0,
        slot: n,
    }
}

fn rt(n: i32) -> Signal {
    Signal::from_raw(libc::SIGRTMIN() + n).unwrap()
}

/// Actions that are not reports or upstream notes.
pub(super) fn acts(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|a| !matches!(a, Action::Report(_) | Action::Upstream(_)))
        .collect()
}

pub(super) fn upstream(actions: &[Action]) -> Vec<Upstream> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Upstream(u) => Some(*u),
            _ => None,
        })
        .collect()
}

pub(super) fn reports(actions: &[Action]) -> Vec<Report> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Report(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// A machine past start-up with `n` workers started at `t0` as pids 100,
/// 101, ...
pub(super) fn running_with(s: Settings) -> (Machine, Instant) {
    let t0 = Instant::now();
    let n = s.programs[0].count;
    let mut m = Machine::new(s);
    assert_eq!(m.start(), vec![Action::Bind]);
    let spawns = m.on_event(Event::Bound, t0);
    assert_eq!(spawns.len(), n as usize);
    for i in 0..n {
        m.on_event(
            Event::Spawned {
                slot: slot(i),
                replacement: false,
                pid: pid(100 + i as i32),
            },
            t0,
        );
        m.on_event(
            Event::Ready {
                pid: pid(100 + i as i32),
            },
            t0,
        );
    }
    (m, t0)
}

pub(super) fn running(n: u32, plain: bool) -> (Machine, Instant) {
    running_with(settings(n, plain))
}

pub(super) fn exited(m: &mut Machine, p: i32, status: Status, at: Instant) -> Vec<Action> {
    m.on_event(
        Event::Exited {
            pid: pid(p),
            status,
        },
        at,
    )
}

pub(super) fn sig(m: &mut Machine, s: Signal, at: Instant) -> Vec<Action> {
    m.on_event(Event::Signal(s), at)
}

pub(super) fn tick(m: &mut Machine, at: Instant) -> Vec<Action> {
    m.on_event(Event::Tick, at)
}

pub(super) fn no_children(m: &mut Machine, at: Instant) -> Vec<Action> {
    assert!(m.awaiting_no_children(at), "not awaiting the last child");
    m.on_event(
        Event::NoChildren {
            others_alive: false,
        },
        at,
    )
}

pub(super) fn spawned(m: &mut Machine, s: u32, replacement: bool, p: i32, at: Instant) {
    m.on_event(
        Event::Spawned {
            slot: slot(s),
            replacement,
            pid: pid(p),
        },
        at,
    );
}

pub(super) fn after(t: Instant, ms: u64) -> Instant {
    t + Duration::from_millis(ms)
}

#[test]
fn plain_child_exit_becomes_the_exit_code() {
    let (mut m, t0) = running(1, true);
    let a = acts(exited(&mut m, 100, Status::Exited(3), after(t0, 1000)));
    assert_eq!(
        a,
        vec![Action::KillLeftovers {
            signal: Signal::TERM
        }]
    );
    assert_eq!(acts(no_children(&mut m, t0)), vec![Action::Exit(3)]);
}

#[test]
fn a_child_killed_by_a_realtime_signal_ends_plain_mode_with_128_plus_n() {
    let (mut m, t0) = running(1, true);
    exited(&mut m, 100, Status::Signaled(rt(6)), t0);
    assert_eq!(
        acts(no_children(&mut m, t0)),
        vec![Action::Exit(128 + rt(6).raw())]
    );
}

#[test]
fn plain_passes_the_received_signal_to_the_group_and_reports_128_plus_n() {
    let (mut m, t0) = running(1, true);
    let a = acts(sig(&mut m, Signal::INT, t0));
    assert_eq!(
        a,
        vec![Action::Stop {
            pid: pid(100),
            signal: Signal::INT
        }]
    );
    exited(&mut m, 100, Status::Signaled(Signal::INT), t0);
    assert_eq!(acts(no_children(&mut m, t0)), vec![Action::Exit(130)]);
}

#[test]
fn other_signals_are_forwarded_and_rewritten() {
    let mut s = settings(1, true);
    s.signal_map = vec![
        SignalRule {
            from: Signal::HUP,
            to: Some(Signal::QUIT),
        },
        SignalRule {
            from: Signal::TTIN,
            to: None,
        },
    ];
    let (mut m, t0) = running_with(s);
    let usr1 = Signal::from_raw(libc::SIGUSR1).unwrap();
    assert_eq!(
        sig(&mut m, usr1, t0),
        vec![Action::Forward {
            pid: pid(100),
            signal: usr1
        }]
    );
    assert_eq!(
        sig(&mut m, Signal::HUP, t0),
        vec![Action::Forward {
            pid: pid(100),
            signal: Signal::QUIT
        }]
    );
    assert!(sig(&mut m, Signal::TTIN, t0).is_empty());
}

#[test]
fn a_shutdown_signal_mapped_to_nothing_is_ignored() {
    let mut s = settings(1, true);
    s.signal_map = vec![SignalRule {
        from: Signal::TERM,
        to: None,
    }];
    let (mut m, t0) = running_with(s);
    let a = sig(&mut m, Signal::TERM, t0);
    assert!(acts(a.clone()).is_empty(), "{a:?}");
    assert!(matches!(
        reports(&a)[..],
        [Report::Dropped {
            signal: Signal::TERM,
        }]
    ));
    assert_eq!(m.phase, Phase::Running);
    assert_eq!(m.next_deadline(), None, "no shutdown timer runs");
    // INT still stops.
    assert!(acts(sig(&mut m, Signal::INT, t0)).contains(&Action::Stop {
        pid: pid(100),
        signal: Signal::INT
    }));
}

#[test]
fn plain_mode_rule_rewrites_what_the_child_gets_on_shutdown() {
    let mut s = settings(1, true);
    s.signal_map = vec![SignalRule {
        from: Signal::TERM,
        to: Some(Signal::INT),
    }];
    let (mut m, t0) = running_with(s);
    assert_eq!(
        acts(sig(&mut m, Signal::TERM, t0)),
        vec![Action::Stop {
            pid: pid(100),
            signal: Signal::INT
        }]
    );
}

#[test]
fn graceful_timeout_then_kill_then_leftovers() {
    let (mut m, t0) = running(2, false);
    let a = acts(sig(&mut m, Signal::TERM, t0));
    assert_eq!(
        a,
        vec![
            Action::Stop {
                pid: pid(100),
                signal: Signal::TERM
            },
            Action::Stop {
                pid: pid(101),
                signal: Signal::TERM
            }
        ]
    );
    exited(&mut m, 100, Status::Signaled(Signal::TERM), after(t0, 1000));
    assert_eq!(m.next_deadline(), Some(after(t0, 8000)));
    let a = acts(tick(&mut m, after(t0, 8000)));
    assert_eq!(
        a,
        vec![
            Action::Kill { pid: pid(101) },
            Action::KillLeftovers {
                signal: Signal::KILL
            }
        ]
    );
    exited(&mut m, 101, Status::Signaled(Signal::KILL), after(t0, 8000));
    assert_eq!(
        acts(no_children(&mut m, after(t0, 8000))),
        vec![Action::Exit(0)]
    );
}

#[test]
fn a_realtime_stop_signal_ends_like_any_other() {
    let mut s = settings(2, false);
    s.programs[0].stop_signal = rt(3);
    let (mut m, t0) = running_with(s);
    let a = acts(sig(&mut m, Signal::TERM, t0));
    assert!(a.contains(&Action::Stop {
        pid: pid(100),
        signal: rt(3)
    }));
    exited(&mut m, 100, Status::Signaled(rt(3)), t0);
    exited(&mut m, 101, Status::Signaled(rt(3)), t0);
    assert_eq!(
        acts(no_children(&mut m, t0)),
        vec![Action::Exit(0)],
        "no wait for the graceful timeout"
    );
}

#[test]
fn second_signal_kills_at_once() {
    let (mut m, t0) = running(1, false);
    sig(&mut m, Signal::TERM, t0);
    let a = acts(sig(&mut m, Signal::INT, after(t0, 10)));
    assert!(a.contains(&Action::Kill { pid: pid(100) }));
    assert!(a.contains(&Action::KillLeftovers {
        signal: Signal::KILL
    }));
}

#[test]
fn shutdown_delay_keeps_serving_first() {
    let mut s = settings(1, false);
    s.shutdown_delay = Duration::from_secs(5);
    let (mut m, t0) = running_with(s);
    assert!(acts(sig(&mut m, Signal::TERM, t0)).is_empty());
    assert_eq!(m.next_deadline(), Some(after(t0, 5000)));
    let a = acts(tick(&mut m, after(t0, 5000)));
    assert_eq!(
        a,
        vec![Action::Stop {
            pid: pid(100),
            signal: Signal::TERM
        }]
    );
}

#[test]
fn shutdown_delay_in_plain_mode_is_reported_where_info_is_silent() {
    let mut s = settings(1, true);
    s.shutdown_delay = Duration::from_secs(2);
    let (mut m, t0) = running_with(s);
    let a = sig(&mut m, Signal::TERM, t0);
    let r = reports(&a);
    assert!(
        matches!(
            r[..],
            [Report::Shutdown {
                delay: Some(_),
                plain: true,
                ..
            }]
        ),
        "{r:?}"
    );
    assert_eq!(r[0].level(), crate::log::Level::Notice);
}

#[test]
fn killed_worker_restarts_in_its_slot_with_backoff() {
    let (mut m, t0) = running(2, false);
    // Ran long enough: restarted at once.
    let t1 = after(t0, 60_000);
    let a = acts(exited(&mut m, 101, Status::Signaled(Signal::KILL), t1));
    assert_eq!(
        a,
        vec![Action::SpawnWorker {
            slot: slot(1),
            replacement: false,
            workers: 2
        }]
    );
    spawned(&mut m, 1, false, 200, t1);
    // Quick failure: backoff 100 ms, then 200 ms.
    assert!(acts(exited(&mut m, 200, Status::Exited(1), after(t1, 50))).is_empty());
    assert_eq!(m.next_deadline(), Some(after(t1, 150)));
    assert_eq!(
        acts(tick(&mut m, after(t1, 150))),
        vec![Action::SpawnWorker {
            slot: slot(1),
            replacement: false,
            workers: 2
        }]
    );
    spawned(&mut m, 1, false, 201, after(t1, 150));
    exited(&mut m, 201, Status::Exited(1), after(t1, 200));
    assert_eq!(m.next_deadline(), Some(after(t1, 400)));
}

#[test]
fn a_worker_killed_by_a_realtime_signal_is_restarted() {
    let (mut m, t0) = running(2, false);
    let t1 = after(t0, 60_000);
    let a = exited(&mut m, 100, Status::Signaled(rt(2)), t1);
    assert!(acts(a.clone()).contains(&Action::SpawnWorker {
        slot: slot(0),
        replacement: false,
        workers: 2
    }));
    assert!(matches!(
        reports(&a)[..],
        [Report::Exited {
            status: Status::Signaled(s),
            next: Next::Restart(_),
            ..
        }] if s == rt(2)
    ));
}

#[test]
fn crash_loop_stops_everything_and_exits_1() {
    let (mut m, t0) = running(2, false);
    let mut t = t0;
    exited(&mut m, 100, Status::Exited(3), t);
    for p in 300..310 {
        t = m.next_deadline().unwrap();
        tick(&mut m, t);
        spawned(&mut m, 0, false, p, t);
        let a = exited(&mut m, p, Status::Exited(3), after(t, 10));
        if reports(&a)
            .iter()
            .any(|r| matches!(r, Report::CrashLoop { failures: 3, .. }))
        {
            assert!(a.contains(&Action::Stop {
                pid: pid(101),
                signal: Signal::TERM
            }));
            exited(&mut m, 101, Status::Signaled(Signal::TERM), t);
            assert_eq!(acts(no_children(&mut m, t)), vec![Action::Exit(1)]);
            return;
        }
    }
    panic!("no crash loop detected");
}

#[test]
fn rolling_restart_starts_new_before_stopping_old() {
    let (mut m, t0) = running(2, false);
    assert!(acts(sig(&mut m, Signal::HUP, t0)).contains(&Action::Replan { program: 0 }));
    let a = acts(m.on_event(
        Event::Replanned {
            program: 0,
            count: None,
        },
        t0,
    ));
    assert_eq!(
        a,
        vec![Action::SpawnWorker {
            slot: slot(0),
            replacement: true,
            workers: 2
        }]
    );
    spawned(&mut m, 0, true, 200, t0);
    // Until the replacement has stayed up, the old one keeps running.
    assert!(acts(tick(&mut m, after(t0, 1000))).is_empty());
    let t1 = after(t0, 2000);
    let a = acts(tick(&mut m, t1));
    assert_eq!(
        a,
        vec![
            Action::Stop {
                pid: pid(100),
                signal: Signal::TERM
            },
            Action::SpawnWorker {
                slot: slot(1),
                replacement: true,
                workers: 2
            }
        ]
    );
    exited(&mut m, 100, Status::Signaled(Signal::TERM), t1);
    spawned(&mut m, 1, true, 201, t1);
    let a = acts(tick(&mut m, after(t1, 2000)));
    assert_eq!(
        a,
        vec![Action::Stop {
            pid: pid(101),
            signal: Signal::TERM
        }]
    );
    assert_eq!(m.live_pids(), vec![pid(200), pid(201), pid(101)]);
}

/// Replaces whatever the roll asks for, each replacement up at once.
fn settle_roll(m: &mut Machine, mut t: Instant, next_pid: &mut i32) -> Instant {
    loop {
        let due = m
            .programs
            .iter()
            .flat_map(|p| p.slots.iter())
            .any(|s| s.replacement.is_some());
        if !due {
            return t;
        }
        t = m.next_deadline().unwrap();
        for a in acts(tick(m, t)) {
            match a {
                Action::SpawnWorker {
                    slot: s,
                    replacement: true,
                    ..
                } => {
                    spawned(m, s.slot, true, *next_pid, t);
                    *next_pid += 1;
                }
                Action::Stop { pid: p, .. } => {
                    exited(m, p.as_raw(), Status::Signaled(Signal::TERM), t);
                }
                _ => {}
            }
        }
    }
}

#[test]
fn hups_faster_than_a_roll_still_replace_every_slot_in_turn() {
    let (mut m, t0) = running(4, false);
    let mut t = t0;
    let mut next = 1000;
    let mut replaced = [0u32; 4];
    // A HUP every second for 40 s: faster than one roll (4 slots x 2 s).
    let mut last_hup = t0;
    for _ in 0..40 {
        t = after(t, 1000);
        last_hup = t;
        sig(&mut m, Signal::HUP, t);
        let mut pending = m.on_event(
            Event::Replanned {
                program: 0,
                count: None,
            },
            t,
        );
        // Perform what comes due until the next HUP.
        loop {
            for a in acts(std::mem::take(&mut pending)) {
                match a {
                    Action::SpawnWorker { slot: s, .. } => {
                        spawned(&mut m, s.slot, true, next, t);
                        next += 1;
                    }
                    Action::Stop { pid: p, .. } => {
                        let s = m.slot_of(p).unwrap().slot;
                        replaced[s as usize] += 1;
                        exited(&mut m, p.as_raw(), Status::Signaled(Signal::TERM), t);
                    }
                    _ => {}
                }
            }
            match m.next_deadline() {
                Some(d) if d < after(last_hup, 1000) => {
                    t = d;
                    pending = tick(&mut m, d);
                }
                _ => break,
            }
        }
    }
    assert!(
        replaced.iter().all(|&n| n >= 3),
        "every slot is replaced in turn: {replaced:?}"
    );
    settle_roll(&mut m, t, &mut next);
    for (i, s) in m.programs[0].slots.iter().enumerate() {
        let w = s.current.as_ref().expect("a worker in every slot");
        assert!(
            w.started >= last_hup,
            "slot {i} kept a worker started before the last HUP"
        );
    }
}

#[test]
fn failed_replacement_keeps_the_running_workers() {
    let (mut m, t0) = running(2, false);
    sig(&mut m, Signal::HUP, t0);
    m.on_event(
        Event::Replanned {
            program: 0,
            count: None,
        },
        t0,
    );
    spawned(&mut m, 0, true, 200, t0);
    let a = exited(&mut m, 200, Status::Exited(1), after(t0, 100));
    assert!(
        matches!(reports(&a)[..], [Report::ReloadFailed { .. }]),
        "{a:?}"
    );
    assert!(acts(a).is_empty());
    assert_eq!(m.live_pids(), vec![pid(100), pid(101)]);
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn ttin_ttou_scale_within_the_bounds() {
    let mut s = settings(2, false);
    s.programs[0].max_count = 3;
    let (mut m, t0) = running_with(s);
    assert_eq!(
        acts(sig(&mut m, Signal::TTIN, t0)),
        vec![Action::SpawnWorker {
            slot: slot(2),
            replacement: false,
            workers: 3
        }]
    );
    spawned(&mut m, 2, false, 102, t0);
    let a = sig(&mut m, Signal::TTIN, t0);
    assert!(acts(a.clone()).is_empty(), "above --max-workers: {a:?}");
    assert!(matches!(reports(&a)[..], [Report::AtMost { max: 3 }]));
    assert_eq!(m.worker_count(0), 3);
    assert_eq!(
        acts(sig(&mut m, Signal::TTOU, t0)),
        vec![Action::Stop {
            pid: pid(102),
            signal: Signal::TERM
        }]
    );
    assert_eq!(m.worker_count(0), 2);
    // The retired worker exiting is not restarted.
    assert!(acts(exited(&mut m, 102, Status::Signaled(Signal::TERM), t0)).is_empty());
    sig(&mut m, Signal::TTOU, t0);
    assert_eq!(m.worker_count(0), 1);
    assert!(acts(sig(&mut m, Signal::TTOU, t0)).is_empty());
    assert_eq!(m.worker_count(0), 1);
}

#[test]
fn a_failed_fork_is_retried_and_never_stops_the_running_workers() {
    let (mut m, t0) = running(2, false);
    let a = sig(&mut m, Signal::TTIN, t0);
    assert!(acts(a).contains(&Action::SpawnWorker {
        slot: slot(2),
        replacement: false,
        workers: 3
    }));
    let mut t = t0;
    for round in 1..=20 {
        let a = m.on_event(
            Event::SpawnFailed {
                slot: slot(2),
                replacement: false,
                failure: StartFailure::Fork {
                    message: "failed to fork: EAGAIN".into(),
                },
            },
            t,
        );
        assert!(
            !a.iter()
                .any(|x| matches!(x, Action::Stop { .. } | Action::Kill { .. })),
            "round {round}: a fork failure stopped a worker: {a:?}"
        );
        assert!(matches!(reports(&a)[..], [Report::ForkFailed { .. }]));
        t = m.next_deadline().expect("a retry is due");
        assert!(t <= after(t0, 10_000 * round), "the backoff is capped");
        let a = acts(tick(&mut m, t));
        assert_eq!(
            a,
            vec![Action::SpawnWorker {
                slot: slot(2),
                replacement: false,
                workers: 3
            }]
        );
    }
    assert_eq!(m.phase, Phase::Running);
    spawned(&mut m, 2, false, 300, t);
    assert_eq!(m.live_pids().len(), 3);
}

#[test]
fn reload_and_scaling_are_ignored_while_shutting_down() {
    let mut s = settings(2, false);
    s.shutdown_delay = Duration::from_secs(5);
    let (mut m, t0) = running_with(s);
    sig(&mut m, Signal::TERM, t0);
    for s in [Signal::HUP, Signal::TTIN, Signal::TTOU] {
        let a = sig(&mut m, s, t0);
        assert!(acts(a.clone()).is_empty(), "{s}");
        assert!(matches!(reports(&a)[..], [Report::Ignored { .. }]));
    }
    assert_eq!(m.worker_count(0), 2);
}

#[test]
fn idle_machine_has_no_deadline() {
    let (m, _) = running(4, false);
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn orphans_are_ignored() {
    let (mut m, t0) = running(1, false);
    assert!(exited(&mut m, 999, Status::Exited(0), t0).is_empty());
}

#[test]
fn command_not_found_exits_127() {
    let mut m = Machine::new(settings(2, false));
    m.start();
    let t0 = Instant::now();
    m.on_event(Event::Bound, t0);
    let a = acts(m.on_event(
        Event::SpawnFailed {
            slot: slot(0),
            replacement: false,
            failure: StartFailure::Command {
                message: "failed to run `x`: not found in PATH".into(),
                code: 127,
            },
        },
        t0,
    ));
    assert_eq!(
        a,
        vec![Action::KillLeftovers {
            signal: Signal::TERM
        }]
    );
    assert_eq!(acts(no_children(&mut m, t0)), vec![Action::Exit(127)]);
}

#[test]
fn stopped_child_is_resumed_unless_it_used_the_terminal() {
    let (mut m, _) = running(1, true);
    assert!(m
        .on_event(
            Event::Stopped {
                pid: pid(100),
                signal: Signal::TSTP
            },
            Instant::now()
        )
        .contains(&Action::Resume { pid: pid(100) }));
    assert!(!m
        .on_event(
            Event::Stopped {
                pid: pid(100),
                signal: Signal::TTIN
            },
            Instant::now()
        )
        .contains(&Action::Resume { pid: pid(100) }));
}

#[test]
fn as_pid1_leftover_processes_are_awaited_within_the_grace() {
    let mut s = settings(1, true);
    s.pid1 = true;
    let (mut m, t0) = running_with(s);
    exited(&mut m, 100, Status::Exited(0), t0);
    // Others (a `docker exec`) remain: look again later, no exit yet.
    assert!(m.awaiting_no_children(t0));
    let a = m.on_event(Event::NoChildren { others_alive: true }, t0);
    assert!(a.is_empty());
    assert!(!m.awaiting_no_children(t0));
    let poll = m.next_deadline().unwrap();
    assert!(poll > t0 && poll <= after(t0, 100));
    tick(&mut m, poll);
    assert!(m.awaiting_no_children(poll));
    // At the graceful deadline: SIGKILL to everything left.
    let a = acts(tick(&mut m, after(t0, 8000)));
    assert!(a.contains(&Action::KillLeftovers {
        signal: Signal::KILL
    }));
    // Past the deadline and its grace, the init exits even if some
    // process (not a child) ignores SIGKILL's reach.
    let late = after(t0, 10_001);
    let a = m.on_event(Event::NoChildren { others_alive: true }, late);
    assert_eq!(acts(a), vec![Action::Exit(0)]);
}

// ---- pre-start ----------------------------------------------------------

fn with_steps(steps: Vec<Step>) -> Machine {
    let mut s = settings(2, false);
    s.steps = steps;
    Machine::new(s)
}

fn run_step(argv: &[&str], secs: u64) -> Step {
    Step::Run {
        argv: argv.iter().map(OsString::from).collect(),
        timeout: Duration::from_secs(secs),
    }
}

#[test]
fn steps_run_in_order_then_bind_then_workers() {
    let target = WaitTarget::parse("tcp://db:5432").unwrap();
    let mut m = with_steps(vec![
        Step::Wait {
            target: target.clone(),
            timeout: Duration::from_secs(60),
        },
        run_step(&["migrate"], 300),
    ]);
    let t0 = Instant::now();
    let a = acts(m.start());
    assert!(matches!(&a[..], [Action::StartWait { target: t, .. }] if *t == target));
    let a = acts(m.on_event(Event::WaitDone(Ok(Duration::from_secs(3))), t0));
    assert_eq!(
        a,
        vec![Action::SpawnStep {
            argv: vec!["migrate".into()]
        }]
    );
    m.on_event(Event::StepSpawned { pid: pid(50) }, t0);
    assert_eq!(m.next_deadline(), Some(after(t0, 300_000)));
    // Signals other than shutdown reach the step's command.
    assert_eq!(
        sig(&mut m, Signal::HUP, t0),
        vec![Action::Report(Report::Ignored {
            signal: Signal::HUP,
            why: "no worker has started yet"
        })]
    );
    let a = acts(exited(&mut m, 50, Status::Exited(0), after(t0, 500)));
    assert_eq!(a, vec![Action::Bind]);
    assert_eq!(acts(m.on_event(Event::Bound, t0)).len(), 2);
}

#[test]
fn a_failed_step_exits_with_its_own_code_and_starts_no_worker() {
    let mut m = with_steps(vec![run_step(&["migrate"], 300)]);
    let t0 = Instant::now();
    m.start();
    m.on_event(Event::StepSpawned { pid: pid(50) }, t0);
    let a = exited(&mut m, 50, Status::Exited(3), t0);
    assert!(matches!(reports(&a)[..], [Report::StepFailed { .. }]));
    assert!(!acts(a)
        .iter()
        .any(|x| matches!(x, Action::Bind | Action::SpawnWorker { .. })));
    assert_eq!(acts(no_children(&mut m, t0)), vec![Action::Exit(3)]);
}

#[test]
fn a_step_past_its_timeout_is_stopped_then_killed_and_fails_with_1() {
    let mut m = with_steps(vec![run_step(&["slow"], 2)]);
    let t0 = Instant::now();
    m.start();
    m.on_event(Event::StepSpawned { pid: pid(50) }, t0);
    let a = tick(&mut m, after(t0, 2000));
    assert!(matches!(reports(&a)[..], [Report::StepTimeout { .. }]));
    assert_eq!(
        acts(a),
        vec![Action::Stop {
            pid: pid(50),
            signal: Signal::TERM
        }]
    );
    // It ignores the stop signal: SIGKILL after the graceful timeout.
    assert_eq!(m.next_deadline(), Some(after(t0, 10_000)));
    assert_eq!(
        acts(tick(&mut m, after(t0, 10_000))),
        vec![Action::Kill { pid: pid(50) }]
    );
    assert_eq!(m.next_deadline(), None);
    exited(
        &mut m,
        50,
        Status::Signaled(Signal::KILL),
        after(t0, 10_000),
    );
    assert_eq!(
        acts(no_children(&mut m, after(t0, 10_000))),
        vec![Action::Exit(1)]
    );
}

#[test]
fn a_step_killed_by_a_realtime_signal_fails_with_128_plus_n() {
    let mut m = with_steps(vec![run_step(&["x"], 2)]);
    let t0 = Instant::now();
    m.start();
    m.on_event(Event::StepSpawned { pid: pid(50) }, t0);
    exited(&mut m, 50, Status::Signaled(rt(4)), t0);
    assert_eq!(
        acts(no_children(&mut m, t0)),
        vec![Action::Exit(128 + rt(4).raw())]
    );
}

#[test]
fn term_during_a_wait_abandons_it_and_exits_143() {
    let mut m = with_steps(vec![Step::Wait {
        target: WaitTarget::File(PathBuf::from("/x")),
        timeout: Duration::from_secs(60),
    }]);
    let t0 = Instant::now();
    m.start();
    let a = sig(&mut m, Signal::TERM, t0);
    assert!(a.contains(&Action::CancelWait));
    assert!(matches!(
        reports(&a)[..],
        [Report::StepInterrupted {
            signal: Signal::TERM,
            ..
        }]
    ));
    assert_eq!(acts(no_children(&mut m, t0)), vec![Action::Exit(143)]);
}

#[test]
fn term_during_a_command_stops_it_and_a_second_kills_it() {
    let mut m = with_steps(vec![run_step(&["migrate"], 300)]);
    let t0 = Instant::now();
    m.start();
    m.on_event(Event::StepSpawned { pid: pid(50) }, t0);
    assert_eq!(
        acts(sig(&mut m, Signal::TERM, t0)),
        vec![Action::Stop {
            pid: pid(50),
            signal: Signal::TERM
        }]
    );
    assert_eq!(
        acts(sig(&mut m, Signal::INT, t0)),
        vec![Action::Kill { pid: pid(50) }]
    );
    exited(&mut m, 50, Status::Signaled(Signal::KILL), t0);
    assert_eq!(acts(no_children(&mut m, t0)), vec![Action::Exit(143)]);
}

#[test]
fn a_directory_runs_each_file_then_moves_on() {
    let mut m = with_steps(vec![Step::Dir {
        path: PathBuf::from("/d"),
        timeout: Duration::from_secs(5),
    }]);
    let t0 = Instant::now();
    assert_eq!(
        m.start(),
        vec![Action::ListDir {
            path: PathBuf::from("/d")
        }]
    );
    let a = m.on_event(
        Event::DirListed(Ok(vec![PathBuf::from("/d/a"), PathBuf::from("/d/b")])),
        t0,
    );
    assert_eq!(
        a,
        vec![Action::SpawnStep {
            argv: vec!["/d/a".into()]
        }]
    );
    m.on_event(Event::StepSpawned { pid: pid(50) }, t0);
    let a = acts(exited(&mut m, 50, Status::Exited(0), t0));
    assert_eq!(
        a,
        vec![Action::SpawnStep {
            argv: vec!["/d/b".into()]
        }]
    );
    m.on_event(Event::StepSpawned { pid: pid(51) }, t0);
    assert_eq!(
        acts(exited(&mut m, 51, Status::Exited(0), t0)),
        vec![Action::Bind]
    );
}

// ---- readiness and the watchdog ----------------------------------------

fn with_ready(n: u32, mode: ReadyMode) -> Settings {
    let mut s = settings(n, false);
    s.programs[0].ready = mode;
    s
}

/// Starts the machine with `n` workers spawned at `t0`, none ready yet.
fn starting(s: Settings) -> (Machine, Instant) {
    let t0 = Instant::now();
    let n = s.programs[0].count;
    let mut m = Machine::new(s);
    m.start();
    m.on_event(Event::Bound, t0);
    for i in 0..n {
        spawned(&mut m, i, false, 100 + i as i32, t0);
    }
    (m, t0)
}

#[test]
fn listen_readiness_is_looked_for_only_while_a_worker_starts() {
    let (mut m, t0) = starting(with_ready(2, ReadyMode::Listen));
    let t = m.next_deadline().unwrap();
    assert_eq!(t, after(t0, 25));
    let a = tick(&mut m, t);
    assert_eq!(
        acts(a),
        vec![Action::CheckListening {
            pids: vec![pid(100), pid(101)]
        }]
    );
    m.on_event(Event::Ready { pid: pid(100) }, t);
    let t = m.next_deadline().unwrap();
    assert_eq!(
        acts(tick(&mut m, t)),
        vec![Action::CheckListening {
            pids: vec![pid(101)]
        }]
    );
    let a = m.on_event(Event::Ready { pid: pid(101) }, t);
    assert!(reports(&a)
        .iter()
        .any(|r| matches!(r, Report::AllReady { count: 2 })));
    assert_eq!(upstream(&a), vec![Upstream::Ready { workers: 2 }]);
    assert_eq!(
        m.next_deadline(),
        None,
        "no wake-up once every worker is ready"
    );
}

#[test]
fn a_roll_waits_for_the_replacement_to_be_ready() {
    let (mut m, t0) = starting(with_ready(1, ReadyMode::Listen));
    m.on_event(Event::Ready { pid: pid(100) }, t0);
    sig(&mut m, Signal::HUP, t0);
    let a = m.on_event(
        Event::Replanned {
            program: 0,
            count: None,
        },
        t0,
    );
    assert_eq!(upstream(&a), vec![Upstream::Reloading]);
    spawned(&mut m, 0, true, 200, t0);
    // Long past --min-uptime, still not ready: the old one serves on.
    let late = after(t0, 30_000);
    let mut t = t0;
    while let Some(d) = m.next_deadline().filter(|d| *d <= late) {
        t = d;
        for a in acts(tick(&mut m, d)) {
            assert!(
                !matches!(a, Action::Stop { .. }),
                "the old worker was stopped before the new one was ready"
            );
        }
    }
    let a = m.on_event(Event::Ready { pid: pid(200) }, t);
    assert!(acts(a.clone()).contains(&Action::Stop {
        pid: pid(100),
        signal: Signal::TERM
    }));
    assert!(reports(&a).iter().any(|r| matches!(
        r,
        Report::Replaced {
            reason: Why::Reload,
            ..
        }
    )));
    assert_eq!(upstream(&a), vec![Upstream::Ready { workers: 1 }]);
}

#[test]
fn a_replacement_not_ready_in_time_stops_the_roll_and_the_old_worker_serves_on() {
    let mut s = with_ready(2, ReadyMode::Notify);
    s.programs[0].ready_timeout = Duration::from_secs(10);
    let (mut m, t0) = starting(s);
    m.on_event(Event::Ready { pid: pid(100) }, t0);
    m.on_event(Event::Ready { pid: pid(101) }, t0);
    sig(&mut m, Signal::HUP, t0);
    m.on_event(
        Event::Replanned {
            program: 0,
            count: None,
        },
        t0,
    );
    spawned(&mut m, 0, true, 200, t0);
    assert_eq!(m.next_deadline(), Some(after(t0, 10_000)));
    let a = tick(&mut m, after(t0, 10_000));
    assert!(reports(&a).iter().any(|r| matches!(
        r,
        Report::NotReady {
            replacement: true,
            ..
        }
    )));
    assert!(reports(&a)
        .iter()
        .any(|r| matches!(r, Report::ReloadFailed { .. })));
    assert_eq!(
        acts(a),
        vec![Action::Stop {
            pid: pid(200),
            signal: Signal::TERM
        }]
    );
    // The new one ignores TERM: SIGKILL after the graceful timeout.
    assert_eq!(
        acts(tick(&mut m, after(t0, 18_000))),
        vec![Action::Kill { pid: pid(200) }]
    );
    exited(
        &mut m,
        200,
        Status::Signaled(Signal::KILL),
        after(t0, 18_000),
    );
    assert_eq!(m.live_pids(), vec![pid(100), pid(101)]);
    assert_eq!(m.phase, Phase::Running);
}

#[test]
fn a_worker_never_ready_counts_toward_the_crash_loop() {
    let mut s = with_ready(1, ReadyMode::Notify);
    s.programs[0].ready_timeout = Duration::from_secs(5);
    let (mut m, _) = starting(s);
    let mut t;
    let mut p = 100;
    for round in 1..=3 {
        t = m.next_deadline().unwrap();
        let a = tick(&mut m, t);
        if a.iter().any(|x| matches!(x, Action::SpawnWorker { .. })) {
            p += 1;
            spawned(&mut m, 0, false, p, t);
            t = m.next_deadline().unwrap();
            let _ = tick(&mut m, t);
        }
        // Past the ready timeout: stopped; its exit is a failed start,
        // however long it ran.
        let a = exited(&mut m, p, Status::Signaled(Signal::TERM), t);
        if round == 3 {
            assert!(
                reports(&a)
                    .iter()
                    .any(|r| matches!(r, Report::CrashLoop { failures: 3, .. })),
                "{a:?}"
            );
            return;
        }
    }
    panic!("no crash loop");
}

#[test]
fn ready_one_from_a_descendant_counts_and_others_are_dropped() {
    let (mut m, t0) = starting(with_ready(1, ReadyMode::Notify));
    let ready = crate::notify::Message::parse("READY=1\nSTATUS=warming up");
    // From a process that is nobody's descendant: dropped.
    let a = m.on_event(
        Event::Notified {
            chain: vec![pid(555), pid(554)],
            message: ready.clone(),
        },
        t0,
    );
    assert!(a.is_empty());
    // From a grandchild of the worker (gunicorn's workers under its
    // master): the first pid of the chain that is a worker counts.
    let a = m.on_event(
        Event::Notified {
            chain: vec![pid(300), pid(250), pid(100)],
            message: ready,
        },
        t0,
    );
    assert!(reports(&a)
        .iter()
        .any(|r| matches!(r, Report::Ready { .. })));
    assert_eq!(
        m.programs[0].slots[0]
            .current
            .as_ref()
            .unwrap()
            .status
            .as_deref(),
        Some("warming up")
    );
}

#[test]
fn a_hung_worker_is_replaced_first_then_stopped() {
    let mut s = with_ready(2, ReadyMode::Notify);
    s.programs[0].watchdog = Some(Duration::from_secs(5));
    let (mut m, t0) = starting(s);
    m.on_event(Event::Ready { pid: pid(100) }, t0);
    m.on_event(Event::Ready { pid: pid(101) }, t0);
    let ping = crate::notify::Message::parse("WATCHDOG=1");
    // Worker 1 keeps pinging; worker 0 goes silent.
    for s in 1..=3 {
        let at = after(t0, 3000 * s);
        m.on_event(
            Event::Notified {
                chain: vec![pid(101)],
                message: ping.clone(),
            },
            at,
        );
        if s == 1 {
            assert!(acts(tick(&mut m, at)).is_empty());
        }
    }
    let t = m.next_deadline().unwrap();
    assert_eq!(t, after(t0, 5000), "worker 0 is silent since it was ready");
    let a = tick(&mut m, t);
    assert!(reports(&a).iter().any(|r| matches!(r, Report::Hung { .. })));
    assert_eq!(
        acts(a),
        vec![
            Action::SpawnWorker {
                slot: slot(0),
                replacement: true,
                workers: 2
            },
            Action::Stop {
                pid: pid(100),
                signal: Signal::TERM
            }
        ]
    );
    spawned(&mut m, 0, true, 200, t);
    // The hung one ends; the replacement takes over at once.
    let a = exited(&mut m, 100, Status::Signaled(Signal::TERM), t);
    assert!(reports(&a)
        .iter()
        .any(|r| matches!(r, Report::TookOver { .. })));
    assert_eq!(m.programs[0].slots[0].restarts.get(&Why::Hung), Some(&1));
    assert_eq!(m.live_pids(), vec![pid(200), pid(101)]);
}

#[test]
fn upstream_hears_ready_reloading_ready_and_stopping() {
    let (mut m, t0) = starting(with_ready(1, ReadyMode::Notify));
    let a = m.on_event(Event::Ready { pid: pid(100) }, t0);
    assert_eq!(upstream(&a), vec![Upstream::Ready { workers: 1 }]);
    sig(&mut m, Signal::HUP, t0);
    let a = m.on_event(
        Event::Replanned {
            program: 0,
            count: None,
        },
        t0,
    );
    assert_eq!(upstream(&a), vec![Upstream::Reloading]);
    spawned(&mut m, 0, true, 200, t0);
    let a = m.on_event(Event::Ready { pid: pid(200) }, t0);
    assert_eq!(upstream(&a), vec![Upstream::Ready { workers: 1 }]);
    // A crash restart later is no news upstream.
    exited(&mut m, 100, Status::Signaled(Signal::TERM), t0);
    let a = sig(&mut m, Signal::TERM, t0);
    assert_eq!(upstream(&a), vec![Upstream::Stopping]);
}

#[test]
fn in_listen_mode_ready_one_alone_does_not_count() {
    let (mut m, t0) = starting(with_ready(1, ReadyMode::Listen));
    let a = m.on_event(
        Event::Notified {
            chain: vec![pid(100)],
            message: crate::notify::Message::parse("READY=1"),
        },
        t0,
    );
    assert!(reports(&a).is_empty(), "{a:?}");
    assert!(!m.programs[0].all_ready());
    m.on_event(Event::Ready { pid: pid(100) }, t0);
    assert!(m.programs[0].all_ready());
}

// ---- the memory guard, age, OOM -----------------------------------------

const MIB: u64 = 1 << 20;

fn sample(m: &mut Machine, at: Instant, workers: &[(i32, u64)], ws: Option<u64>) -> Vec<Action> {
    m.on_event(
        Event::MemorySampled {
            workers: workers.iter().map(|&(p, b)| (pid(p), Some(b))).collect(),
            working_set: ws,
        },
        at,
    )
}

#[test]
fn without_a_guard_nothing_is_sampled() {
    let (m, _) = running(3, false);
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn a_worker_above_max_memory_is_replaced_new_first_one_at_a_time() {
    let mut s = settings(3, false);
    s.programs[0].max_memory = Some(100 * MIB);
    let (mut m, t0) = running_with(s);
    let t = m.next_deadline().unwrap();
    assert_eq!(t, after(t0, 5000), "sampling every --memory-interval");
    assert_eq!(
        acts(tick(&mut m, t)),
        vec![Action::SampleMemory {
            pids: vec![pid(100), pid(101), pid(102)]
        }]
    );
    let a = sample(
        &mut m,
        t,
        &[(100, 150 * MIB), (101, 50 * MIB), (102, 120 * MIB)],
        None,
    );
    let r = reports(&a);
    assert_eq!(
        r.iter()
            .filter(|r| matches!(
                r,
                Report::Recycle {
                    reason: Why::Memory,
                    ..
                }
            ))
            .count(),
        2,
        "{r:?}"
    );
    // Only one replacement at a time: slot 0 first.
    assert_eq!(
        acts(a),
        vec![Action::SpawnWorker {
            slot: slot(0),
            replacement: true,
            workers: 3
        }]
    );
    spawned(&mut m, 0, true, 200, t);
    // The next sample does not ask twice.
    let a = sample(&mut m, t, &[(100, 160 * MIB), (102, 130 * MIB)], None);
    assert!(acts(a).is_empty());
    let a = m.on_event(Event::Ready { pid: pid(200) }, t);
    assert_eq!(
        acts(a),
        vec![
            Action::Stop {
                pid: pid(100),
                signal: Signal::TERM
            },
            Action::SpawnWorker {
                slot: slot(2),
                replacement: true,
                workers: 3
            }
        ]
    );
    assert_eq!(m.programs[0].slots[0].restarts.get(&Why::Memory), Some(&1));
}

#[test]
fn a_failed_recycle_keeps_the_worker_and_leaves_it_alone_a_while() {
    let mut s = settings(1, false);
    s.programs[0].max_memory = Some(100 * MIB);
    let (mut m, t0) = running_with(s);
    let t = after(t0, 5000);
    tick(&mut m, t);
    sample(&mut m, t, &[(100, 150 * MIB)], None);
    spawned(&mut m, 0, true, 200, t);
    let a = exited(&mut m, 200, Status::Exited(1), t);
    assert!(reports(&a).iter().any(|r| matches!(
        r,
        Report::RecycleFailed {
            reason: Why::Memory,
            ..
        }
    )));
    assert_eq!(m.live_pids(), vec![pid(100)]);
    // Still too big at the next sample, but on hold: no new attempt.
    let t2 = after(t, 5000);
    tick(&mut m, t2);
    assert!(acts(sample(&mut m, t2, &[(100, 150 * MIB)], None)).is_empty());
    // After the hold (--backoff-max, 10 s), it is tried again.
    let t3 = after(t, 10_000);
    tick(&mut m, t3);
    assert!(acts(sample(&mut m, t3, &[(100, 150 * MIB)], None))
        .iter()
        .any(|a| matches!(
            a,
            Action::SpawnWorker {
                replacement: true,
                ..
            }
        )));
}

#[test]
fn the_container_high_mark_replaces_the_largest_worker_then_cools_down() {
    let mut s = settings(3, false);
    s.memory_high = Some(400 * MIB);
    let (mut m, t0) = running_with(s);
    let t = after(t0, 5000);
    tick(&mut m, t);
    let a = sample(
        &mut m,
        t,
        &[(100, 100 * MIB), (101, 200 * MIB), (102, 150 * MIB)],
        Some(450 * MIB),
    );
    assert_eq!(
        acts(a),
        vec![Action::SpawnWorker {
            slot: slot(1),
            replacement: true,
            workers: 3
        }]
    );
    // Within the cool-down (3 intervals), still high: nothing more.
    let t2 = after(t, 5000);
    tick(&mut m, t2);
    let a = sample(
        &mut m,
        t2,
        &[(100, 100 * MIB), (101, 200 * MIB), (102, 150 * MIB)],
        Some(450 * MIB),
    );
    assert!(acts(a).is_empty());
}

#[test]
fn age_recycling_with_jitter_never_overlaps() {
    let mut s = settings(4, false);
    s.programs[0].max_age = Some(Duration::from_secs(60));
    let (mut m, t0) = running_with(s);
    let first = m.next_deadline().unwrap();
    assert!(
        first >= after(t0, 60_000) && first <= after(t0, 66_000),
        "{first:?}"
    );
    // Long past every worker's due time: still one replacement at a time.
    let late = after(t0, 120_000);
    let a = acts(tick(&mut m, late));
    let spawns = a
        .iter()
        .filter(|x| {
            matches!(
                x,
                Action::SpawnWorker {
                    replacement: true,
                    ..
                }
            )
        })
        .count();
    assert_eq!(spawns, 1, "{a:?}");
    let mut next = 300;
    let mut done = 0;
    let mut t = late;
    for a in a {
        if let Action::SpawnWorker { slot: s, .. } = a {
            spawned(&mut m, s.slot, true, next, t);
        }
    }
    // Each ready replacement lets the next one start.
    while done < 4 {
        let a = m.on_event(Event::Ready { pid: pid(next) }, t);
        done += 1;
        next += 1;
        let spawns: Vec<_> = acts(a)
            .into_iter()
            .filter_map(|x| match x {
                Action::SpawnWorker { slot: s, .. } => Some(s.slot),
                _ => None,
            })
            .collect();
        assert!(spawns.len() <= 1);
        for s in spawns {
            spawned(&mut m, s, true, next, t);
        }
        t = after(t, 10);
    }
    for s in &m.programs[0].slots {
        assert_eq!(s.restarts.get(&Why::Age), Some(&1));
    }
}

#[test]
fn a_sigkill_nobody_in_the_init_sent_with_the_oom_count_risen_is_an_oom_kill() {
    let (mut m, t0) = running(2, false);
    m.on_event(
        Event::OomKills {
            count: 1,
            limit: Some(256 * MIB),
        },
        t0,
    );
    let a = exited(
        &mut m,
        100,
        Status::Signaled(Signal::KILL),
        after(t0, 60_000),
    );
    assert!(
        reports(&a).iter().any(|r| matches!(
            r,
            Report::OomKilled {
                limit: Some(l),
                ..
            } if *l == 256 * MIB
        )),
        "{a:?}"
    );
    assert_eq!(m.programs[0].slots[0].restarts.get(&Why::Oom), Some(&1));
    // The same count again: the next SIGKILL is not an OOM kill.
    m.on_event(
        Event::OomKills {
            count: 1,
            limit: None,
        },
        t0,
    );
    let a = exited(
        &mut m,
        101,
        Status::Signaled(Signal::KILL),
        after(t0, 60_000),
    );
    assert!(!reports(&a)
        .iter()
        .any(|r| matches!(r, Report::OomKilled { .. })));
}

#[test]
fn a_sigkill_the_init_sent_is_never_an_oom_kill() {
    let mut s = settings(1, false);
    s.graceful_timeout = Duration::from_secs(1);
    s.programs[0].graceful_timeout = Duration::from_secs(1);
    let (mut m, t0) = running_with(s);
    sig(&mut m, Signal::TERM, t0);
    tick(&mut m, after(t0, 1000));
    m.on_event(
        Event::OomKills {
            count: 5,
            limit: None,
        },
        t0,
    );
    let a = exited(&mut m, 100, Status::Signaled(Signal::KILL), after(t0, 1000));
    assert!(!reports(&a)
        .iter()
        .any(|r| matches!(r, Report::OomKilled { .. })));
}

#[test]
fn a_recycle_asked_for_a_worker_that_died_meanwhile_is_dropped() {
    let mut s = settings(2, false);
    s.programs[0].max_memory = Some(100 * MIB);
    let (mut m, t0) = running_with(s);
    let t = after(t0, 5000);
    tick(&mut m, t);
    // Both too big: slot 0's replacement starts, slot 1 waits its turn.
    sample(&mut m, t, &[(100, 150 * MIB), (101, 150 * MIB)], None);
    spawned(&mut m, 0, true, 200, t);
    // Slot 1's worker dies on its own and restarts as pid 300.
    let a = exited(
        &mut m,
        101,
        Status::Signaled(Signal::KILL),
        after(t, 60_000),
    );
    assert!(acts(a).contains(&Action::SpawnWorker {
        slot: slot(1),
        replacement: false,
        workers: 2
    }));
    spawned(&mut m, 1, false, 300, after(t, 60_000));
    // Slot 0's replacement is ready: the waiting request was for pid 101,
    // which is gone; the fresh worker 300 is not replaced.
    let a = acts(m.on_event(Event::Ready { pid: pid(200) }, after(t, 60_000)));
    assert!(
        !a.iter().any(|x| matches!(
            x,
            Action::SpawnWorker {
                replacement: true,
                ..
            }
        )),
        "{a:?}"
    );
}
