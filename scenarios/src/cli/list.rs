//! `kdst list`: the scenarios, their variants and parameters.

use std::fmt::Write as _;

use crate::{Expect, Registry, Scenario};

use super::Result;
use super::args::{Format, ListArgs};

pub(crate) fn list(registry: &Registry, args: &ListArgs) -> Result<bool> {
    let scenarios: Vec<&dyn Scenario> = registry.iter().collect();
    if args.format == Format::Json {
        let list: Vec<serde_json::Value> = scenarios
            .iter()
            .map(|scenario| {
                serde_json::json!({
                    "name": scenario.name(),
                    "summary": scenario.summary(),
                    "upstream": scenario.upstream(),
                    "variants": scenario.variants().iter().map(|v| serde_json::json!({
                        "name": v.name,
                        "summary": v.summary,
                        "expect": match &v.expect {
                            Expect::Holds => "holds".to_string(),
                            Expect::Fails(kind, text) => format!("fails: {kind}: {text}"),
                        },
                    })).collect::<Vec<_>>(),
                    "params": scenario.params().iter().map(|p| serde_json::json!({
                        "name": p.name, "summary": p.summary, "unit": p.unit.symbol(),
                        "default": p.default, "min": p.min, "max": p.max, "swarm": p.swarm,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        super::output::print(&(serde_json::to_string_pretty(&list).expect("serialises") + "\n"))?;
        return Ok(true);
    }
    let mut out = String::new();
    for scenario in &scenarios {
        let _ = writeln!(out, "{}\n  {}", scenario.name(), scenario.summary());
        for link in scenario.upstream() {
            let _ = writeln!(out, "  upstream: {link}");
        }
        out.push_str("  variants:\n");
        for variant in scenario.variants() {
            let expect = match &variant.expect {
                Expect::Holds => "holds".to_string(),
                Expect::Fails(kind, text) => format!("fails ({kind}: {text})"),
            };
            let _ = writeln!(out, "    {:<18} {} [{expect}]", variant.name, variant.summary);
        }
        out.push_str("  params:\n");
        for param in scenario.params() {
            let swarm = if param.swarm.is_empty() {
                String::new()
            } else {
                let values: Vec<String> = param.swarm.iter().map(u64::to_string).collect();
                format!(", swarm {{{}}}", values.join(", "))
            };
            let _ = writeln!(
                out,
                "    {:<26} {} (default {} {}, {}..={}{swarm})",
                param.name, param.summary, param.default, param.unit, param.min, param.max
            );
        }
        out.push('\n');
    }
    super::output::print(&out)?;
    Ok(true)
}
