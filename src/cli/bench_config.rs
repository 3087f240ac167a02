//! The settings of `bench` and `sweep`, checked: the attack, where the truth comes from, the
//! sweep's plan and the output format.

use std::path::PathBuf;

use super::config::{detect_config, ConfigError, InputConfig};
use super::{BenchArgs, BenchFormat, SweepArgs, TriggerArgs};
use crate::attack::{AttackConfig, AttackKind};
use crate::bench::sweep::Plan;
use crate::pipeline::DetectConfig;

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub input: InputConfig,
    pub detect: DetectConfig,
    pub attack: AttackConfig,
    /// `--truth`: the known poisons come from this file and nothing is planted.
    pub truth: Option<PathBuf>,
    pub format: BenchFormat,
    pub out: Option<PathBuf>,
    /// `--html FILE`: the run as one self-contained page, with ROC curves.
    pub html: Option<PathBuf>,
}

impl BenchConfig {
    pub fn from_args(args: BenchArgs, stderr_is_terminal: bool) -> Result<Self, ConfigError> {
        if !(args.rate > 0.0 && args.rate < 1.0) && args.attack != AttackKind::Clean {
            return Err(ConfigError::Range(
                "--rate",
                args.rate.to_string(),
                "between 0 and 1",
            ));
        }
        let attack = attack_config(args.attack, args.rate, args.attack_seed, args.trigger)?;
        attack.check()?;
        Ok(BenchConfig {
            input: InputConfig::from_args(args.input, stderr_is_terminal)?,
            detect: detect_config(args.detect)?,
            attack,
            truth: args.truth,
            format: args.format,
            out: args.out,
            html: args.html,
        })
    }
}

/// The attack settings shared by `bench` and `sweep`, range-checked.
fn attack_config(
    kind: AttackKind,
    rate: f64,
    seed: u64,
    t: TriggerArgs,
) -> Result<AttackConfig, ConfigError> {
    if !(0.0..=1.0).contains(&t.alpha) {
        return Err(ConfigError::Range(
            "--alpha",
            t.alpha.to_string(),
            "between 0 and 1",
        ));
    }
    if t.patch == 0 {
        return Err(ConfigError::Range("--patch", "0".into(), "at least 1"));
    }
    if !(t.sig_delta > 0.0 && t.sig_delta <= 255.0) {
        return Err(ConfigError::Range(
            "--sig-delta",
            t.sig_delta.to_string(),
            "in (0, 255]",
        ));
    }
    if !(t.sig_frequency > 0.0 && t.sig_frequency.is_finite()) {
        return Err(ConfigError::Range(
            "--sig-frequency",
            t.sig_frequency.to_string(),
            "above 0",
        ));
    }
    Ok(AttackConfig {
        kind,
        rate,
        target: t.target,
        source: t.source,
        mapping: t.mapping,
        patch: t.patch,
        position: t.patch_position,
        alpha: t.alpha,
        sig_delta: t.sig_delta,
        sig_frequency: t.sig_frequency,
        trigger: t.trigger,
        seed,
    })
}

#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub input: InputConfig,
    pub detect: DetectConfig,
    pub plan: Plan,
    /// The attack settings every run starts from; kind, rate and seed come from the plan.
    pub attack: AttackConfig,
    pub format: BenchFormat,
}

impl SweepConfig {
    pub fn from_args(args: SweepArgs, stderr_is_terminal: bool) -> Result<Self, ConfigError> {
        let mut plan = match &args.plan {
            Some(path) => Plan::read(path)?,
            None => Plan::default(),
        };
        if let Some(attacks) = args.attacks {
            plan.attacks = attacks;
        }
        if let Some(rates) = args.rates {
            plan.rates = rates;
        }
        if let Some(seeds) = args.seeds {
            plan.seeds = seeds;
        }
        plan.check()?;
        let attack = attack_config(AttackKind::Clean, plan.rates[0], 0, args.trigger)?;
        for &kind in &plan.attacks {
            AttackConfig {
                kind,
                ..attack.clone()
            }
            .check()?;
        }
        Ok(SweepConfig {
            input: InputConfig::from_args(args.input, stderr_is_terminal)?,
            detect: detect_config(args.detect)?,
            plan,
            attack,
            format: args.format,
        })
    }
}
