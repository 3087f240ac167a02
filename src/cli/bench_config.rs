//! The settings of `bench` and `sweep`, checked: the attack, where the truth comes from, the
//! sweep's plan and the output format.

use std::path::PathBuf;

use super::config::{detect_config, ConfigError, InputConfig};
use super::{BenchArgs, BenchFormat, SweepArgs, TriggerArgs};
use crate::attack::{AttackConfig, AttackKind, Mapping};
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
    /// The settings of one planned run: `--source` goes to targeted-flip only and `--mapping`
    /// to badnets and blend only, so one plan can mix them with other attacks.
    pub fn attack(&self, kind: AttackKind, rate: f64, seed: u64) -> AttackConfig {
        AttackConfig {
            rate,
            seed,
            ..SweepConfig::fit(&self.attack, kind)
        }
    }

    fn fit(base: &AttackConfig, kind: AttackKind) -> AttackConfig {
        let mut config = AttackConfig {
            kind,
            ..base.clone()
        };
        if kind != AttackKind::TargetedFlip {
            config.source = None;
        }
        if !matches!(kind, AttackKind::Badnets | AttackKind::Blend) {
            config.mapping = Mapping::AllToOne;
        }
        config
    }

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
        let config_for = |kind| SweepConfig::fit(&attack, kind);
        for &kind in &plan.attacks {
            config_for(kind).check()?;
        }
        // A setting no planned attack uses is refused, as bench refuses it.
        let uses_source = plan.attacks.contains(&AttackKind::TargetedFlip);
        let uses_mapping = plan
            .attacks
            .iter()
            .any(|k| matches!(k, AttackKind::Badnets | AttackKind::Blend));
        if (attack.source.is_some() && !uses_source)
            || (attack.mapping != Mapping::AllToOne && !uses_mapping)
        {
            AttackConfig {
                kind: plan.attacks[0],
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn sweep(argv: &[&str]) -> Result<SweepConfig, ConfigError> {
        let args =
            crate::cli::Args::parse_from([&["poisongate", "sweep", "in.csv"], argv].concat());
        let crate::cli::Command::Sweep(sweep) = args.command else {
            panic!("not a sweep")
        };
        SweepConfig::from_args(sweep, true)
    }

    #[test]
    fn a_plan_mixes_attacks_each_getting_only_its_settings() {
        let config = sweep(&[
            "--attacks",
            "flip,targeted-flip,badnets",
            "--source",
            "1",
            "--mapping",
            "all-to-all",
            "--seeds",
            "4",
        ])
        .unwrap();
        assert_eq!(config.plan.seeds, [4]);
        assert_eq!(config.plan.rates, [0.1]);
        let flip = config.attack(AttackKind::Flip, 0.2, 4);
        assert_eq!(
            (flip.source, flip.mapping, flip.rate, flip.seed),
            (None, Mapping::AllToOne, 0.2, 4)
        );
        let targeted = config.attack(AttackKind::TargetedFlip, 0.1, 0);
        assert_eq!(targeted.source.as_deref(), Some("1"));
        assert_eq!(targeted.mapping, Mapping::AllToOne);
        let badnets = config.attack(AttackKind::Badnets, 0.1, 0);
        assert_eq!((badnets.source, badnets.mapping), (None, Mapping::AllToAll));
    }

    #[test]
    fn settings_no_planned_attack_uses_and_bad_lists_are_refused() {
        let unused = sweep(&["--attacks", "flip,clean", "--source", "1"]).unwrap_err();
        assert!(unused.to_string().contains("--source"), "{unused}");
        let unused = sweep(&["--attacks", "flip", "--mapping", "all-to-all"]).unwrap_err();
        assert!(unused.to_string().contains("all-to-all"), "{unused}");
        let missing = sweep(&["--attacks", "targeted-flip"]).unwrap_err();
        assert!(missing.to_string().contains("--source"), "{missing}");
        let rate = sweep(&["--rates", "0.1,0"]).unwrap_err();
        assert_eq!(rate.to_string(), "sweep rate 0 is not between 0 and 1");
        let defaults = sweep(&[]).unwrap();
        assert_eq!(defaults.plan, Plan::default());
    }
}
