//! The book's figures of a trained net that more than one program draws.

use std::path::Path;

/// The test digits `predicted` gets wrong as one captioned grid ("true → predicted", the
/// book's figure of the ensemble's mistakes), written to `path`; `who` names the predictor
/// in the title.
pub fn misclassified(
    path: &Path,
    test: &mnist::Dataset,
    predicted: &[usize],
    who: &str,
) -> Result<(), report::ReportError> {
    let tiles: Vec<report::Tile> = predicted
        .iter()
        .enumerate()
        .filter(|&(i, &y)| y != usize::from(test.label(i)))
        .map(|(i, &y)| report::Tile {
            width: test.cols(),
            height: test.rows(),
            ink: test
                .image(i)
                .iter()
                .map(|&p| f32::from(p) / 255.0)
                .collect(),
            caption: format!("{} → {y}", test.label(i)),
        })
        .collect();
    let title = format!(
        "The {} test digits {who} misclassifies (true → predicted)",
        tiles.len()
    );
    report::tiles_png(&tiles, 12, 3, &title, path)?;
    eprintln!(
        "{} misclassified digits drawn in {}",
        tiles.len(),
        path.display()
    );
    Ok(())
}

/// The first conv-pool layer's filters, one tile per filter and input channel, each scaled
/// by the largest weight of the layer so that filters compare (white = most negative), written
/// to `path` (network3's `--filters`, the book's figure of chapter 6).
pub fn filters(path: &Path, net: &nn::Network<f32>) -> anyhow::Result<()> {
    let Some(w) = net
        .layers()
        .first()
        .filter(|l| l.kind() == nn::LayerKind::ConvPool)
        .and_then(|l| l.weights().first().copied())
    else {
        anyhow::bail!("--filters: the first layer is not a conv-pool layer");
    };
    let t = net.graph().value(w)?;
    let d = t.shape().dims().to_vec();
    let (kh, kw) = (d[d.len() - 2], d[d.len() - 1]);
    let max = t
        .data()
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let tiles: Vec<report::Tile> = t
        .data()
        .chunks_exact(kh * kw)
        .enumerate()
        .map(|(i, f)| report::Tile {
            width: kw,
            height: kh,
            ink: f.iter().map(|v| 0.5 + 0.5 * v / max).collect(),
            caption: format!("{i}"),
        })
        .collect();
    let title = format!(
        "The {} learned {kh}x{kw} filters of the first layer",
        tiles.len()
    );
    report::tiles_png(&tiles, 10, 12, &title, path)?;
    eprintln!("filters drawn in {}", path.display());
    Ok(())
}
