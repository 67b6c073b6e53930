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
