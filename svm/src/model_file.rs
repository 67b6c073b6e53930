//! LIBSVM's model file format, read and written in Rust.
//!
//! The format is LIBSVM's own (`svm_save_model` / `svm_load_model`, readable by its
//! `svm-predict` tool and by `svm_load_model`): a header of `key values...` lines, then `SV` and
//! one line per support vector, its `nr_class - 1` coefficients followed by `index:value` pairs.
//! It is parsed here rather than by `svm_load_model` because that function trusts the file: a
//! truncated or edited file makes it read through NULL pointers or past its arrays. Here every
//! count is checked against what is actually there and a bad file gives [`Error::BadModel`]
//! naming the line. Numbers are written in the shortest form that reads back to the same
//! `f64` (LIBSVM's writer rounds feature values to 8 significant digits), so a saved model
//! predicts exactly as the one in memory.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use libsvm_sys::svm_node;
use quoting::{capped, quote};

use crate::error::{Error, Result};
use crate::features::END;
use crate::model::{Kernel, Model, Parts, SvmType, MAX_CLASSES};

/// The longest line a model file may have, 1 MiB. A support vector of MNIST is at most about
/// 13 KB (9 coefficients, 784 `index:value` pairs) and a header line of rho values for 100
/// classes about 100 KB; a longer line is refused when its first MiB has been read, never
/// collected whole (`/dev/zero` is one endless line).
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

/// The largest model file read, 2 GiB: every support vector of 60,000 MNIST images stored
/// densely is about 800 MB.
pub(crate) const MAX_MODEL_BYTES: u64 = 1 << 31;

impl Model {
    /// Write the model to `path` in LIBSVM's format, atomically: into a temp file in the same
    /// directory, fsynced, then renamed over `path` (a crash leaves any previous file intact).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        atomic_file::write(path, |w| self.write_to(w)).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            action: "write",
            source,
        })
    }

    /// Write the model in LIBSVM's format to `w`.
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut head = String::new();
        let _ = writeln!(head, "svm_type {}", self.svm_type().name());
        let kernel = self.kernel();
        let _ = writeln!(head, "kernel_type {}", kernel.name());
        match kernel {
            Kernel::Linear => {}
            Kernel::Polynomial {
                degree,
                gamma,
                coef0,
            } => {
                let _ = writeln!(head, "degree {degree}\ngamma {gamma:?}\ncoef0 {coef0:?}");
            }
            Kernel::Rbf { gamma } => {
                let _ = writeln!(head, "gamma {gamma:?}");
            }
            Kernel::Sigmoid { gamma, coef0 } => {
                let _ = writeln!(head, "gamma {gamma:?}\ncoef0 {coef0:?}");
            }
        }
        let _ = writeln!(head, "nr_class {}", self.classes().len());
        let _ = writeln!(head, "total_sv {}", self.support_count());
        head.push_str("rho");
        for r in self.rho() {
            let _ = write!(head, " {r:?}");
        }
        head.push_str("\nlabel");
        for c in self.classes() {
            let _ = write!(head, " {c}");
        }
        head.push_str("\nnr_sv");
        for n in self.support_per_class() {
            let _ = write!(head, " {n}");
        }
        head.push_str("\nSV\n");
        w.write_all(head.as_bytes())?;

        let l = self.support_count();
        let coef = self.coef_rows();
        let rows = self.classes().len() - 1;
        let mut line = String::new();
        for (i, sv) in self.support_vectors().enumerate() {
            line.clear();
            for r in 0..rows {
                let _ = write!(line, "{:?} ", coef[r * l + i]);
            }
            for (index, value) in sv {
                let _ = write!(line, "{index}:{value:?} ");
            }
            line.push('\n');
            w.write_all(line.as_bytes())?;
        }
        w.flush()
    }

    /// Read a model file written by [`Model::save`], LIBSVM's `svm_save_model` or its
    /// `svm-train` tool (classification models: `c_svc` or `nu_svc`, any kernel but
    /// `precomputed`).
    ///
    /// A file over 2 GiB is refused from its size; one with a line over 1 MiB (a valid
    /// support vector of MNIST is about 13 KB) when that line's first MiB has been read.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let io_err = |source| Error::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.is_file() && meta.len() > MAX_MODEL_BYTES {
            return Err(Error::BadModel {
                path: path.to_path_buf(),
                line: 0,
                detail: format!(
                    "{} bytes, more than the {MAX_MODEL_BYTES} a model file may have",
                    meta.len()
                ),
            });
        }
        Self::read_from(BufReader::with_capacity(1 << 20, file), path)
    }

    /// Read a model in LIBSVM's format from `r`; `path` names the source in errors. At most
    /// 2 GiB are read, and no line longer than 1 MiB is collected.
    pub fn read_from(r: impl BufRead, path: impl AsRef<Path>) -> Result<Model> {
        read_limited(r, path.as_ref(), MAX_LINE_BYTES, MAX_MODEL_BYTES)
    }
}

/// [`Model::read_from`] with the line and file limits given (tests use small ones).
pub(crate) fn read_limited(
    r: impl BufRead,
    path: &Path,
    max_line: usize,
    max_total: u64,
) -> Result<Model> {
    Reader {
        path: path.to_path_buf(),
        source: r,
        line: Vec::new(),
        line_no: 0,
        total: 0,
        max_line,
        max_total,
    }
    .read()
}

/// The header fields, each seen at most once.
#[derive(Default)]
struct Header {
    svm_type: Option<SvmType>,
    kernel: Option<String>,
    degree: Option<i32>,
    gamma: Option<f64>,
    coef0: Option<f64>,
    nr_class: Option<usize>,
    total_sv: Option<usize>,
    rho: Option<Vec<f64>>,
    label: Option<Vec<i32>>,
    nr_sv: Option<Vec<i32>>,
    prob_a: Option<Vec<f64>>,
    prob_b: Option<Vec<f64>>,
}

struct Reader<R> {
    path: PathBuf,
    source: R,
    /// The line being read, as bytes (reused from line to line).
    line: Vec<u8>,
    line_no: usize,
    /// Bytes read so far.
    total: u64,
    /// The longest line accepted ([`MAX_LINE_BYTES`]).
    max_line: usize,
    /// The most bytes read ([`MAX_MODEL_BYTES`]).
    max_total: u64,
}

impl<R: BufRead> Reader<R> {
    fn bad(&self, detail: impl Into<String>) -> Error {
        Error::BadModel {
            path: self.path.clone(),
            line: self.line_no,
            detail: detail.into(),
        }
    }

    /// The next line without its `\n` or `\r\n`, or `None` at the end. Reads at most two
    /// bytes past `max_line` for a line and one past `max_total` in all.
    fn next_line(&mut self) -> Result<Option<String>> {
        self.line.clear();
        let room = self.max_total.saturating_sub(self.total);
        // A line's `\r\n` tell a line at the limit from a longer one.
        let take = (self.max_line as u64 + 2).min(room + 1);
        let n = (&mut self.source)
            .take(take)
            .read_until(b'\n', &mut self.line)
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                action: "read",
                source,
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        self.total += n as u64;
        if self.total > self.max_total {
            return Err(self.bad(format!(
                "the file goes on past {} bytes, more than a model file may have",
                self.max_total
            )));
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
        }
        if self.line.len() > self.max_line {
            return Err(self.bad(format!(
                "line longer than {} bytes (a valid model's lines are far shorter)",
                self.max_line
            )));
        }
        match String::from_utf8(std::mem::take(&mut self.line)) {
            Ok(line) => Ok(Some(line)),
            Err(_) => Err(self.bad("not UTF-8 text")),
        }
    }

    fn read(mut self) -> Result<Model> {
        let h = self.read_header()?;
        // At the SV line: the header must be complete and consistent.
        let svm_type = h.svm_type.ok_or_else(|| self.bad("no svm_type line"))?;
        let kernel = self.kernel(&h)?;
        let k = h.nr_class.ok_or_else(|| self.bad("no nr_class line"))?;
        let l = h.total_sv.ok_or_else(|| self.bad("no total_sv line"))?;
        let rho = h.rho.ok_or_else(|| self.bad("no rho line"))?;
        let labels = h.label.ok_or_else(|| self.bad("no label line"))?;
        let n_sv = h.nr_sv.ok_or_else(|| self.bad("no nr_sv line"))?;
        let sum: i64 = n_sv.iter().map(|&n| i64::from(n)).sum();
        if n_sv.iter().any(|&n| n < 0) || sum != l as i64 {
            return Err(self.bad(format!(
                "nr_sv {} does not add up to total_sv {l}",
                capped(&format!("{n_sv:?}"))
            )));
        }
        let rows = k - 1;
        let mut coef_by_sv: Vec<f64> = Vec::new();
        let mut nodes: Vec<svm_node> = Vec::new();
        for sv in 0..l {
            let Some(line) = self.next_line()? else {
                return Err(self.bad(format!(
                    "file ends after {sv} of the {l} support vectors (total_sv)"
                )));
            };
            let mut tokens = line.split_ascii_whitespace();
            for r in 0..rows {
                let t = tokens.next().ok_or_else(|| {
                    self.bad(format!(
                        "support vector {}: {r} coefficients, expected {rows}",
                        sv + 1
                    ))
                })?;
                coef_by_sv.push(self.number(t, "coefficient")?);
            }
            let mut last = 0;
            for t in tokens {
                let (i, v) = t
                    .split_once(':')
                    .ok_or_else(|| self.bad(format!("expected index:value, found {}", quote(t))))?;
                let index: i32 = i
                    .parse()
                    .map_err(|_| self.bad(format!("bad feature index {}", quote(i))))?;
                if index <= last {
                    return Err(self.bad(format!(
                        "feature index {index} after {last}: indices must be >= 1 and increasing"
                    )));
                }
                last = index;
                let value = self.number(v, "feature value")?;
                nodes.push(svm_node { index, value });
            }
            nodes.push(svm_node {
                index: END,
                value: 0.0,
            });
        }
        while let Some(line) = self.next_line()? {
            if !line.trim().is_empty() {
                return Err(self.bad(format!("text after the {l} support vectors (total_sv)")));
            }
        }
        // Coefficients were read per support vector; LIBSVM keeps them per row.
        let mut coef = vec![0.0; rows * l];
        for (i, chunk) in coef_by_sv.chunks(rows.max(1)).enumerate().take(l) {
            for (r, &c) in chunk.iter().enumerate() {
                coef[r * l + i] = c;
            }
        }
        let parts = Parts {
            svm_type,
            kernel,
            params: None,
            labels,
            n_sv,
            rho,
            coef,
            nodes,
            support: None,
        };
        Model::from_parts(parts).map_err(|detail| {
            self.line_no = 0;
            self.bad(detail)
        })
    }

    fn kernel(&mut self, h: &Header) -> Result<Kernel> {
        let name = h
            .kernel
            .clone()
            .ok_or_else(|| self.bad("no kernel_type line"))?;
        let need = |v: Option<f64>, what: &str, this: &Self| {
            v.ok_or_else(|| this.bad(format!("{name} kernel without a {what} line")))
        };
        Ok(match name.as_str() {
            "linear" => Kernel::Linear,
            "polynomial" => Kernel::Polynomial {
                degree: h
                    .degree
                    .ok_or_else(|| self.bad("polynomial kernel without a degree line"))?,
                gamma: need(h.gamma, "gamma", self)?,
                coef0: need(h.coef0, "coef0", self)?,
            },
            "rbf" => Kernel::Rbf {
                gamma: need(h.gamma, "gamma", self)?,
            },
            "sigmoid" => Kernel::Sigmoid {
                gamma: need(h.gamma, "gamma", self)?,
                coef0: need(h.coef0, "coef0", self)?,
            },
            other => unreachable!("kernel_type {other} was checked on its line"),
        })
    }

    fn number(&self, t: &str, what: &str) -> Result<f64> {
        match t.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(self.bad(format!("bad {what} {}", quote(t)))),
        }
    }

    fn read_header(&mut self) -> Result<Header> {
        let mut h = Header::default();
        loop {
            let Some(line) = self.next_line()? else {
                return Err(self.bad("file ends before the SV line"));
            };
            let mut tokens = line.split_ascii_whitespace();
            let Some(key) = tokens.next() else {
                continue;
            };
            let values: Vec<&str> = tokens.collect();
            let once = |seen: bool, this: &Self| {
                if seen {
                    Err(this.bad(format!("{key} given twice")))
                } else {
                    Ok(())
                }
            };
            match key {
                "svm_type" => {
                    once(h.svm_type.is_some(), self)?;
                    let v = self.single(key, &values)?;
                    h.svm_type = Some(match v {
                        "c_svc" => SvmType::CSvc,
                        "nu_svc" => SvmType::NuSvc,
                        "one_class" | "epsilon_svr" | "nu_svr" => {
                            return Err(self.bad(format!(
                                "svm_type {v} is not supported: only classification models \
                                 (c_svc, nu_svc)"
                            )))
                        }
                        other => return Err(self.bad(format!("unknown svm_type {}", quote(other)))),
                    });
                }
                "kernel_type" => {
                    once(h.kernel.is_some(), self)?;
                    let v = self.single(key, &values)?;
                    match v {
                        "linear" | "polynomial" | "rbf" | "sigmoid" => {}
                        "precomputed" => {
                            return Err(self.bad("precomputed kernels are not supported"))
                        }
                        other => {
                            return Err(self.bad(format!("unknown kernel_type {}", quote(other))))
                        }
                    }
                    h.kernel = Some(v.to_string());
                }
                "degree" => {
                    once(h.degree.is_some(), self)?;
                    let v = self.single(key, &values)?;
                    h.degree = Some(
                        v.parse()
                            .map_err(|_| self.bad(format!("bad degree {}", quote(v))))?,
                    );
                }
                "gamma" => {
                    once(h.gamma.is_some(), self)?;
                    h.gamma = Some(self.number(self.single(key, &values)?, "gamma")?);
                }
                "coef0" => {
                    once(h.coef0.is_some(), self)?;
                    h.coef0 = Some(self.number(self.single(key, &values)?, "coef0")?);
                }
                "nr_class" => {
                    once(h.nr_class.is_some(), self)?;
                    let range = 1..=MAX_CLASSES;
                    let shown = format!("1..={MAX_CLASSES}");
                    h.nr_class = Some(self.count(key, &values, range, &shown)?);
                }
                "total_sv" => {
                    once(h.total_sv.is_some(), self)?;
                    let range = 0..=i32::MAX as usize;
                    h.total_sv = Some(self.count(key, &values, range, "0..=i32::MAX")?);
                }
                "rho" | "probA" | "probB" => {
                    let k = self.classes_known(&h, key)?;
                    let v = self.numbers(key, &values, k * (k - 1) / 2)?;
                    let slot = match key {
                        "rho" => &mut h.rho,
                        "probA" => &mut h.prob_a,
                        _ => &mut h.prob_b,
                    };
                    once(slot.is_some(), self)?;
                    *slot = Some(v);
                }
                "label" | "nr_sv" => {
                    let k = self.classes_known(&h, key)?;
                    if values.len() != k {
                        return Err(self.bad(format!(
                            "{key} has {} values for nr_class {k}",
                            values.len()
                        )));
                    }
                    let v = values
                        .iter()
                        .map(|t| t.parse::<i32>())
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(|_| self.bad(format!("{key} values must be integers")))?;
                    let slot = if key == "label" {
                        &mut h.label
                    } else {
                        &mut h.nr_sv
                    };
                    once(slot.is_some(), self)?;
                    *slot = Some(v);
                }
                "SV" => {
                    if !values.is_empty() {
                        return Err(self.bad("text after SV"));
                    }
                    return Ok(h);
                }
                other => return Err(self.bad(format!("unknown header key {}", quote(other)))),
            }
        }
    }

    fn single<'v>(&self, key: &str, values: &[&'v str]) -> Result<&'v str> {
        match values {
            [v] => Ok(v),
            _ => Err(self.bad(format!("{key} takes one value, found {}", values.len()))),
        }
    }

    /// `key`'s one value, a whole number in `range` (`shown` in the error).
    fn count(
        &self,
        key: &str,
        values: &[&str],
        range: std::ops::RangeInclusive<usize>,
        shown: &str,
    ) -> Result<usize> {
        let v = self.single(key, values)?;
        v.parse()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| self.bad(format!("{key} {} is not in {shown}", quote(v))))
    }

    fn numbers(&self, key: &str, values: &[&str], n: usize) -> Result<Vec<f64>> {
        if values.len() != n {
            return Err(self.bad(format!("{key} has {} values, expected {n}", values.len())));
        }
        values.iter().map(|t| self.number(t, key)).collect()
    }

    fn classes_known(&self, h: &Header, key: &str) -> Result<usize> {
        h.nr_class
            .ok_or_else(|| self.bad(format!("{key} before nr_class")))
    }
}
