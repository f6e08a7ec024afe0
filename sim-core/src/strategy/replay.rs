//! Replays a recorded schedule: the task of every step and the value of every draw.
//!
//! Strict replay reproduces a run exactly or says where it diverged ("nondeterminism at step N").
//! Lenient replay, for shrinking, follows the schedule while it fits and otherwise keeps running
//! the current task (or the lowest-numbered runnable one), so a shortened schedule still runs.

use super::{Choice, Divergence, Strategy};
use crate::TaskId;
use crate::schedule::Schedule;

/// What a replay does when the schedule no longer fits the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayMode {
    /// Any mismatch, or a schedule that ends early or late, is a [`Divergence`].
    Strict,
    /// Mismatches fall back to the current task, else the lowest runnable id; draws fall back to 0.
    Lenient,
}

/// The replay strategy.
#[derive(Clone, Debug)]
pub struct Replay {
    steps: Vec<TaskId>,
    draws: Vec<(u64, u64)>,
    next_draw: usize,
    mode: ReplayMode,
}

impl Replay {
    /// Replays `schedule` strictly.
    pub fn new(schedule: &Schedule) -> Self {
        Replay::with_mode(schedule, ReplayMode::Strict)
    }

    /// Replays `schedule` in `mode`.
    pub fn with_mode(schedule: &Schedule, mode: ReplayMode) -> Self {
        Replay { steps: schedule.steps.clone(), draws: schedule.draws.clone(), next_draw: 0, mode }
    }

    fn fallback(choice: &Choice<'_>) -> usize {
        if let Some(current) = choice.current
            && let Some(index) = choice.runnable.iter().position(|&task| task == current)
        {
            return index;
        }
        let lowest = choice.runnable.iter().enumerate().min_by_key(|(_, task)| **task);
        lowest.map_or(0, |(index, _)| index)
    }
}

impl Strategy for Replay {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn begin(&mut self, _seed: u64) {
        self.next_draw = 0;
    }

    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence> {
        let Some(&expected) = self.steps.get(choice.step as usize) else {
            return match self.mode {
                ReplayMode::Lenient => Ok(Replay::fallback(choice)),
                ReplayMode::Strict => Err(Divergence::ScheduleEnded {
                    steps: self.steps.len() as u64,
                    runnable: choice.runnable.to_vec(),
                }),
            };
        };
        match choice.runnable.iter().position(|&task| task == expected) {
            Some(index) => Ok(index),
            None if self.mode == ReplayMode::Lenient => Ok(Replay::fallback(choice)),
            None => {
                Err(Divergence::NotRunnable { task: expected, runnable: choice.runnable.to_vec() })
            }
        }
    }

    fn next_flag(&mut self, step: u64, _odds: u64) -> Result<bool, Divergence> {
        // A recorded perturbation point is 1 (fired) or 0.
        Ok(self.next_draw(step, 2)? == 1)
    }

    fn next_draw(&mut self, step: u64, bound: u64) -> Result<u64, Divergence> {
        let recorded = self.draws.get(self.next_draw).copied();
        self.next_draw += 1;
        match recorded {
            Some((at, value)) if at == step && value < bound => Ok(value),
            _ if self.mode == ReplayMode::Lenient => Ok(0),
            Some((at, value)) => Err(Divergence::DrawMismatch {
                bound,
                step,
                index: (self.next_draw - 1) as u64,
                value,
                at,
            }),
            None => Err(Divergence::DrawsExhausted { bound, step, draws: self.draws.len() as u64 }),
        }
    }

    fn end(&mut self, steps: u64) -> Result<(), Divergence> {
        if self.mode == ReplayMode::Strict && steps < self.steps.len() as u64 {
            return Err(Divergence::ScheduleNotUsedUp {
                steps,
                scheduled: self.steps.len() as u64,
            });
        }
        Ok(())
    }
}
