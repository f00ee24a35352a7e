//! Sweeps in an experiment file: one `[[methods]]` entry with
//! `sweep = { "train.algorithm.lambda_f" = [0.0, 0.1, 0.5] }` becomes one method per value, named
//! `family[lambda_f=0.1]`; several axes give their cartesian product. A sensitivity study (denoiser steps
//! T, noise scale, T') or a λ_f Pareto sweep is then one `dsrm experiment` run with shared seeds.
//!
//! A path is dotted keys into the method's own TOML table (the table as written, defaults filled in).
//! Each variant is rebuilt through the typed config, so a misspelt key or a wrong type is refused there;
//! a key the config would silently drop is caught by reading the value back.

use super::MethodConfig;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use toml::Value;

/// A method after expansion: the config to run, the entry it came from and its swept values.
#[derive(Debug, Clone, PartialEq)]
pub struct Expanded {
    pub method: MethodConfig,
    /// The `name` of the entry in the experiment file.
    pub family: String,
    /// Dotted path -> value; empty for a method without a sweep.
    pub params: BTreeMap<String, Value>,
}

/// Expands every method's sweep; errors name the experiment file and the method.
pub fn expand(file: &Path, methods: &[MethodConfig]) -> Result<Vec<Expanded>> {
    let mut out: Vec<Expanded> = Vec::new();
    for m in methods {
        let variants = expand_one(m).with_context(|| format!("{}: method {:?}", file.display(), m.name))?;
        for v in variants {
            if v.method.name.contains(['/', '\\']) {
                bail!("{}: method name {:?} would not be a directory name", file.display(), v.method.name);
            }
            if out.iter().any(|o| o.method.name == v.method.name) {
                bail!("{}: two methods are named {:?}", file.display(), v.method.name);
            }
            out.push(v);
        }
    }
    Ok(out)
}

fn expand_one(m: &MethodConfig) -> Result<Vec<Expanded>> {
    let base = MethodConfig { sweep: None, ..m.clone() };
    let Some(sweep) = m.sweep.as_ref().filter(|s| !s.is_empty()) else {
        return Ok(vec![Expanded { method: base, family: m.name.clone(), params: BTreeMap::new() }]);
    };
    for (path, values) in sweep {
        let root = path.split('.').next().unwrap_or_default();
        if matches!(root, "name" | "sweep") || path.split('.').any(str::is_empty) {
            bail!("sweep path {path:?}: expected dotted keys into the method's table, e.g. \"train.epochs\"");
        }
        if values.is_empty() {
            bail!("sweep path {path:?} has no values");
        }
    }
    let table = Value::try_from(&base).context("serialising the method")?;
    let short = short_names(sweep.keys());
    let mut variants = Vec::new();
    // A path counts as a setting once some value of its axis reads back; a value that reads back as absent is
    // a default the config leaves unwritten (e.g. λ_D = 0), not a missing setting.
    let mut read_back: BTreeMap<&String, bool> = sweep.keys().map(|p| (p, false)).collect();
    for combo in cartesian(sweep) {
        let mut value = table.clone();
        for (path, v) in &combo {
            set_path(&mut value, path, (*v).clone()).with_context(|| format!("sweep path {path:?}"))?;
        }
        let label: Vec<String> = combo.iter().map(|(p, v)| format!("{}={}", short[*p], display(v))).collect();
        let name = format!("{}[{}]", m.name, label.join(","));
        value.as_table_mut().expect("a method is a table").insert("name".into(), Value::String(name.clone()));
        let method: MethodConfig = value.clone().try_into().map_err(|e: toml::de::Error| {
            let given: Vec<String> = combo.iter().map(|(p, v)| format!("{p} = {v}")).collect();
            anyhow::anyhow!("sweep {}: {}", given.join(", "), e.message().trim())
        })?;
        let back = Value::try_from(&method).context("serialising the method")?;
        for (path, v) in &combo {
            match get_path(&back, path) {
                None => {}
                got if same(got, v) => {
                    read_back.insert(path, true);
                }
                _ => bail!("sweep path {path:?}: the method has no such setting (the value {v} was not used)"),
            }
        }
        let params = combo.iter().map(|(p, v)| (p.to_string(), (*v).clone())).collect();
        variants.push(Expanded { method, family: m.name.clone(), params });
    }
    if let Some((path, _)) = read_back.iter().find(|(_, &seen)| !seen) {
        bail!("sweep path {path:?}: the method has no such setting (none of its values was used)");
    }
    Ok(variants)
}

/// Every combination of the axes, in key order with the last axis varying fastest.
fn cartesian(sweep: &BTreeMap<String, Vec<Value>>) -> Vec<Vec<(&String, &Value)>> {
    let mut combos: Vec<Vec<(&String, &Value)>> = vec![Vec::new()];
    for (path, values) in sweep {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut next = c.clone();
                    next.push((path, v));
                    next
                })
            })
            .collect();
    }
    combos
}

/// The last key of each path, or the whole path where two axes share a last key.
fn short_names<'a>(paths: impl Iterator<Item = &'a String> + Clone) -> BTreeMap<&'a String, String> {
    let last = |p: &str| p.rsplit('.').next().unwrap_or(p).to_string();
    paths
        .clone()
        .map(|p| {
            let clash = paths.clone().filter(|q| last(q) == last(p)).count() > 1;
            (p, if clash { p.clone() } else { last(p) })
        })
        .collect()
}

/// A value as written in a method name: strings without quotes.
fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Sets a dotted path, creating missing tables on the way (the typed config judges the result).
fn set_path(root: &mut Value, path: &str, v: Value) -> Result<()> {
    let keys: Vec<&str> = path.split('.').collect();
    let mut node = root;
    for (i, key) in keys.iter().enumerate() {
        let Some(table) = node.as_table_mut() else {
            bail!("{} is not a table", keys[..i].join("."));
        };
        if i + 1 == keys.len() {
            table.insert(key.to_string(), v);
            return Ok(());
        }
        node = table.entry(key.to_string()).or_insert_with(|| Value::Table(Default::default()));
    }
    Ok(())
}

fn get_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |node, key| node.get(key))
}

/// Equal values, with integers and floats compared as numbers (`lambda_f = [0, 1]` for a float field).
fn same(got: Option<&Value>, want: &Value) -> bool {
    let num = |v: &Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
    match (got, num(want)) {
        (Some(g), Some(w)) => num(g) == Some(w),
        (Some(g), None) => g == want,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::ExperimentFile;

    fn load(text: &str) -> Result<(ExperimentFile, Vec<Expanded>)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exp.toml");
        std::fs::write(&path, text).unwrap();
        let file = ExperimentFile::load(&path)?;
        let expanded = expand(&path, &file.methods)?;
        Ok((file, expanded))
    }

    const HEAD: &str = "seeds = [1]\n[[methods]]\nname = \"mp\"\nheuristic = \"most-popular\"\n";

    #[test]
    fn two_axes_give_their_product_with_names_family_and_params() {
        let text = format!(
            "{HEAD}[[methods]]\nname = \"ppo\"\nsweep = {{ \"train.algorithm.clip\" = [0.1, 0.3], \"train.epochs\" = [1, 2] }}\n\
             [methods.train]\nepochs = 5\n[methods.train.algorithm]\nkind = \"ppo\"\n"
        );
        let (_, methods) = load(&text).unwrap();
        let names: Vec<&str> = methods.iter().map(|m| m.method.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mp",
                "ppo[clip=0.1,epochs=1]",
                "ppo[clip=0.1,epochs=2]",
                "ppo[clip=0.3,epochs=1]",
                "ppo[clip=0.3,epochs=2]"
            ]
        );
        let last = &methods[4];
        assert_eq!(last.family, "ppo");
        assert_eq!(last.params["train.epochs"], Value::Integer(2));
        let train = last.method.train.as_ref().unwrap();
        assert_eq!(train.epochs, 2);
        match &train.algorithm {
            dsrm_agents::learner::Algorithm::Ppo(c) => assert_eq!(c.clip, 0.3),
            other => panic!("expected PPO, got {other:?}"),
        }
        assert!(last.method.sweep.is_none());
        assert!(methods[0].params.is_empty() && methods[0].family == "mp");
    }

    #[test]
    fn a_default_the_config_leaves_unwritten_is_a_valid_sweep_value() {
        // λ_D = 0 is not written back (so older run identities hold), yet it is a real point of the axis.
        let text = format!(
            "{HEAD}[[methods]]\nname = \"joint\"\nsweep = {{ \"train.dsrm.joint_lambda\" = [0.0, 0.5] }}\n\
             [methods.train]\nepochs = 1\n[methods.train.dsrm]\ncondition_window = 0\n"
        );
        let (_, methods) = load(&text).unwrap();
        let lambdas: Vec<f64> =
            methods[1..].iter().map(|m| m.method.train.as_ref().unwrap().dsrm.as_ref().unwrap().joint_lambda).collect();
        assert_eq!(lambdas, [0.0, 0.5]);
    }

    #[test]
    fn bad_paths_and_values_name_the_file_and_method() {
        let sweep = |axis: &str| {
            format!("{HEAD}[[methods]]\nname = \"a2c\"\nsweep = {{ {axis} }}\n[methods.train]\nepochs = 1\n")
        };
        for (axis, expected) in [
            ("\"train.algorithm.no_such_key\" = [1]", "no_such_key"),
            ("\"train.epochs\" = [\"many\"]", "train.epochs = \"many\""),
            ("\"train.epochs.deeper\" = [1]", "train.epochs is not a table"),
            ("\"train.epochs\" = []", "has no values"),
            ("\"name\" = [\"x\"]", "dotted keys"),
            ("\"train.no_such_table.key\" = [0.0, 1.0]", "unknown field `no_such_table`"),
        ] {
            let err = format!("{:#}", load(&sweep(axis)).unwrap_err());
            assert!(err.contains("exp.toml") && err.contains("method \"a2c\""), "{axis}: {err}");
            assert!(err.contains(expected), "{axis}: {err}");
        }
    }
}
