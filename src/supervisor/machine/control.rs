//! Commands through the control socket: `init --reload`, `--scale`,
//! `--stop`. Each does what its signal does (HUP, TTIN/TTOU, TERM), on
//! the same paths, whatever `--signal-map` says of the signal: the
//! socket asks in so many words. Two differences, both on purpose:
//! `--stop` while stopping changes nothing (a second TERM kills
//! everything at once, which no one asks for by repeating a command),
//! and a command that cannot be done now is refused with a reason the
//! client shows.

use std::time::Instant;

use super::{report, Machine, Phase};
use crate::supervisor::events::{Action, Command, Peer};
use crate::supervisor::report::Report;
use crate::vocab::{Scale, Signal};

impl Machine {
    pub(super) fn control(
        &mut self,
        command: Command,
        program: Option<usize>,
        by: Peer,
        now: Instant,
    ) -> Vec<Action> {
        let mut name = command.to_string();
        if let Some(p) = program {
            name = format!("{name} of program {}", self.settings.programs[p].name);
        }
        let mut out = vec![report(Report::Requested {
            command: name.clone(),
            by,
        })];
        let refused = |why| {
            report(Report::Refused {
                command: name.clone(),
                why,
            })
        };
        match command {
            Command::Stop => {
                if !matches!(
                    self.phase,
                    Phase::Prestart | Phase::Binding | Phase::Running
                ) {
                    out.push(refused("already shutting down"));
                    return out;
                }
                out.extend(
                    self.shutdown(Signal::TERM, now)
                        .into_iter()
                        .map(|a| match a {
                            Action::Report(Report::Shutdown { delay, .. }) => {
                                report(Report::Stopping { delay })
                            }
                            a => a,
                        }),
                );
            }
            Command::Reload | Command::Scale(_) if self.settings.plain => out.push(refused(
                "plain mode runs one child: nothing to replace or scale (see --workers)",
            )),
            Command::Reload | Command::Scale(_) => match self.phase {
                Phase::Running => {
                    let p = program.unwrap_or(self.settings.scale_program);
                    // A reload of every program passes over the idle ones.
                    let targeted = program.is_some() || matches!(command, Command::Scale(_));
                    if let (Some(why), true) = (self.programs[p].idle(), targeted) {
                        out.push(refused(why));
                        return out;
                    }
                    match command {
                        Command::Scale(Scale::By(d)) => out.extend(self.scale_by(p, d, now)),
                        Command::Scale(Scale::To(n)) => {
                            let max = self.settings.programs[p]
                                .max_count
                                .max(self.worker_count(p));
                            if n > max {
                                out.push(report(Report::AtMost { max }));
                            } else {
                                out.extend(self.scale_to(p, n, now));
                            }
                        }
                        _ => {
                            out.push(report(Report::Reloading {
                                program: program.map(|p| self.settings.programs[p].name.clone()),
                            }));
                            out.extend(self.replans(program));
                        }
                    }
                }
                Phase::Prestart | Phase::Binding => out.push(refused("no worker has started yet")),
                _ => out.push(refused("shutting down")),
            },
        }
        out
    }
}
