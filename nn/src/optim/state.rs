use crate::{NnError, Result};
use autograd::{Graph, Var};
use tensor::Float;

/// What an optimiser needs to continue a run exactly: its kind and step counts, typed, and
/// its per-parameter buffers (velocities, moments, the weight average), which a checkpoint
/// stores as tensors beside the weights so that any size of network can be resumed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimizerState<T> {
    /// Which optimiser saved the state and its counters; `None` for one with none (SGD).
    pub scalars: Option<Scalars>,
    /// Named buffers (`"adam.m.3"`: Adam's first moment of parameter 3); an empty buffer is
    /// one the optimiser has not needed yet.
    pub buffers: Vec<(String, Vec<T>)>,
}

/// The small part of an optimiser's state: which optimiser it is and its step counts. A
/// checkpoint's JSON holds it as `{"optimizer": "adam", "t": 12}` (`null` for none).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "optimizer", rename_all = "lowercase")]
pub enum Scalars {
    /// Momentum's (its velocities are buffers).
    Momentum,
    /// Adam's.
    Adam {
        /// Steps taken.
        t: u64,
    },
    /// The weight average's.
    Averaged {
        /// The averaged optimiser's.
        inner: Option<Box<Scalars>>,
        /// Steps averaged.
        t: u64,
    },
    /// The one-cycle schedule's.
    #[serde(rename = "one_cycle")]
    OneCycle {
        /// The scheduled optimiser's.
        inner: Option<Box<Scalars>>,
        /// Steps taken.
        t: u64,
    },
}

impl Scalars {
    /// The optimiser's name, as the JSON tags it.
    pub fn kind(&self) -> &'static str {
        match self {
            Scalars::Momentum => "momentum",
            Scalars::Adam { .. } => "adam",
            Scalars::Averaged { .. } => "averaged",
            Scalars::OneCycle { .. } => "one_cycle",
        }
    }
}

impl<T: Float> OptimizerState<T> {
    /// The scalars as a checkpoint's JSON holds them.
    pub fn scalars_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.scalars).unwrap_or_default()
    }

    /// The scalars from a checkpoint's JSON, checked for their kind and step counts.
    pub fn scalars_from_json(json: &serde_json::Value) -> Result<Option<Scalars>> {
        serde_json::from_value(json.clone()).map_err(|e| {
            NnError::Config(format!(
                "the saved optimiser state (its kind and step counts) is damaged: {e}"
            ))
        })
    }

    /// The state as checkpoint format 1 kept it, all in JSON (`{"velocities": [[..]]}`,
    /// `{"m": [[..]], "v": [[..]], "t": n}`, `{"inner": .., "average": [[..]], "t": n}`, or
    /// `null`), in today's form, so that runs checkpointed before format 2 still resume.
    pub(crate) fn from_format1(json: &serde_json::Value) -> Result<Self> {
        let lists = |key: &str, prefix: &str, out: &mut Vec<(String, Vec<T>)>| -> Result<()> {
            let v: Vec<Vec<f64>> = serde_json::from_value(json[key].clone()).map_err(|e| {
                NnError::Config(format!("the saved optimiser state's {key:?}: {e}"))
            })?;
            for (k, b) in v.into_iter().enumerate() {
                out.push((format!("{prefix}.{k}"), b.into_iter().map(T::of).collect()));
            }
            Ok(())
        };
        let t = || {
            json["t"].as_u64().ok_or_else(|| {
                NnError::Config("the saved step count is missing or not a whole number".into())
            })
        };
        let mut buffers = Vec::new();
        let scalars = if json.is_null() {
            None
        } else if json.get("average").is_some() {
            let inner = Self::from_format1(&json["inner"])?;
            buffers = inner.buffers;
            lists("average", "average", &mut buffers)?;
            Some(Scalars::Averaged {
                inner: inner.scalars.map(Box::new),
                t: t()?,
            })
        } else if json.get("velocities").is_some() {
            lists("velocities", "momentum.velocity", &mut buffers)?;
            Some(Scalars::Momentum)
        } else if json.get("m").is_some() {
            lists("m", "adam.m", &mut buffers)?;
            lists("v", "adam.v", &mut buffers)?;
            Some(Scalars::Adam { t: t()? })
        } else {
            return Err(NnError::Config(
                "the saved optimiser state is of no optimiser this nndl knows".into(),
            ));
        };
        Ok(OptimizerState { scalars, buffers })
    }
}

/// One buffer per parameter (momentum's velocities, Adam's moments), zero until first used,
/// saved in a checkpoint as tensors.
#[derive(Debug, Clone, Default)]
pub(crate) struct Buffers<T> {
    pub(crate) per_param: Vec<Vec<T>>,
}

impl<T: Float> Buffers<T> {
    /// Keeps the buffers if there is one per parameter (a resumed run's), else starts over.
    pub(crate) fn begin(&mut self, params: usize) {
        if self.per_param.len() != params {
            self.per_param = vec![Vec::new(); params];
        }
    }

    /// Parameter `k`'s buffer of `len` values, zero-filled on first use.
    pub(crate) fn get(&mut self, k: usize, len: usize) -> Result<&mut Vec<T>> {
        let b = &mut self.per_param[k];
        if b.len() != len {
            if !b.is_empty() {
                return Err(NnError::Config(format!(
                    "optimiser state: parameter {k} has {} values saved for {len}",
                    b.len()
                )));
            }
            b.resize(len, T::zero());
        }
        Ok(b)
    }

    /// Appends the buffers as `{prefix}.{k}`, one per parameter (empty ones too, so that a
    /// missing one is damage, not a fresh start).
    pub(crate) fn save(&self, prefix: &str, out: &mut Vec<(String, Vec<T>)>) {
        for (k, b) in self.per_param.iter().enumerate() {
            out.push((format!("{prefix}.{k}"), b.clone()));
        }
    }

    /// Takes the buffers `{prefix}.0 ..` out of `saved`: none (a run saved before its first
    /// step), or exactly one per size, each empty or of its parameter's size, all finite.
    pub(crate) fn load(
        saved: &mut Vec<(String, Vec<T>)>,
        prefix: &str,
        sizes: &[usize],
        what: &str,
    ) -> Result<Self> {
        let dot = format!("{prefix}.");
        let mut found: Vec<Option<Vec<T>>> = vec![None; sizes.len()];
        let mut count = 0;
        for (name, b) in std::mem::take(saved) {
            let Some(k) = name.strip_prefix(&dot) else {
                saved.push((name, b));
                continue;
            };
            let k = k
                .parse::<usize>()
                .ok()
                .filter(|&k| k < sizes.len() && found[k].is_none())
                .ok_or_else(|| {
                    NnError::Config(format!(
                        "{what}: unexpected buffer {name:?} for a network of {} parameters",
                        sizes.len()
                    ))
                })?;
            if !b.is_empty() && b.len() != sizes[k] {
                return Err(NnError::Config(format!(
                    "{what}: parameter {k} has {} values saved for {}",
                    b.len(),
                    sizes[k]
                )));
            }
            if b.iter().any(|v| !v.is_finite()) {
                return Err(NnError::Config(format!(
                    "{what}: parameter {k} holds a non-finite number"
                )));
            }
            found[k] = Some(b);
            count += 1;
        }
        if count == 0 {
            return Ok(Buffers::default());
        }
        if count != sizes.len() {
            return Err(NnError::Config(format!(
                "{what}: {count} buffers saved for {} parameters",
                sizes.len()
            )));
        }
        Ok(Buffers {
            per_param: found.into_iter().flatten().collect(),
        })
    }

    /// Whether every buffer is full (none left to start at zero).
    pub(crate) fn all_full(&self, sizes: &[usize]) -> bool {
        self.per_param.len() == sizes.len()
            && self.per_param.iter().zip(sizes).all(|(b, &n)| b.len() == n)
    }
}

impl<T: Float> OptimizerState<T> {
    /// The state of an optimiser with `scalars` and the named per-parameter `buffers`.
    pub(crate) fn of(scalars: Scalars, buffers: &[(&str, &Buffers<T>)]) -> Self {
        let mut out = Vec::new();
        for (prefix, b) in buffers {
            b.save(prefix, &mut out);
        }
        OptimizerState {
            scalars: Some(scalars),
            buffers: out,
        }
    }

    /// The sizes of `params` in `g`, once the state is known to be the optimiser `kind`'s.
    pub(crate) fn sizes_for(&self, kind: &str, g: &Graph<T>, params: &[Var]) -> Result<Vec<usize>> {
        expect_kind(self, kind)?;
        sizes(g, params)
    }
}

/// The number of values of each of `params`.
pub(crate) fn sizes<T: Float>(g: &Graph<T>, params: &[Var]) -> Result<Vec<usize>> {
    params.iter().map(|&p| Ok(g.value(p)?.numel())).collect()
}

/// Fails unless `state` was saved by the optimiser `kind`.
pub(crate) fn expect_kind<T>(state: &OptimizerState<T>, kind: &str) -> Result<()> {
    match state.scalars.as_ref().map(Scalars::kind) {
        Some(k) if k == kind => Ok(()),
        other => Err(NnError::Config(format!(
            "the saved optimiser state is {}'s, not {kind}'s: resume with the same optimiser",
            other.map_or("another optimiser".to_string(), |k| format!("{k:?}"))
        ))),
    }
}

/// Fails if buffers are left that no part of the optimiser took.
pub(crate) fn no_more<T>(state: &OptimizerState<T>) -> Result<()> {
    match state.buffers.first() {
        None => Ok(()),
        Some((name, _)) => Err(NnError::Config(format!(
            "the saved optimiser state has a buffer {name:?} this optimiser does not keep"
        ))),
    }
}
