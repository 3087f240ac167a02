//! Image folders laid out as `ROOT/<class>/<image>`: the class is the folder name, the id the
//! path relative to ROOT. Anything else found there (files in ROOT, nested folders, other
//! extensions, empty class folders) is reported, never skipped silently.

use std::path::{Path, PathBuf};

use super::decode::{self, Encoded, Header};
use super::{read_dir_sorted, SourceError};
use crate::dataset::{Dataset, Format, Ids, Labels, Origin, Payload};
use crate::progress::Progress;
use crate::validate::{Finding, Rule};

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Files found in a class folder, in a stable order.
pub(crate) struct Listing {
    pub files: Vec<PathBuf>,
    pub ids: Vec<String>,
    pub classes: Vec<String>,
    pub findings: Vec<Finding>,
}

pub fn load(
    root: &Path,
    size: Option<(u32, u32)>,
    progress: &Progress,
) -> Result<(Dataset, Vec<Finding>), SourceError> {
    let spinner = progress.spinner("listing images");
    let listing = list(root)?;
    spinner.finish_and_clear();
    let items: Vec<Encoded<'_>> = listing.files.iter().map(|p| Encoded::File(p)).collect();
    let headers = decode::read_headers(&items, progress);
    let shape = decode::common_shape(&headers, size).map_err(|problem| SourceError::Images {
        path: root.to_owned(),
        problem,
    })?;
    drop(items);
    load_read(root, listing, headers, shape, progress)
}

/// [`load`] of a folder already listed, its headers read and its common shape chosen.
pub(crate) fn load_read(
    root: &Path,
    listing: Listing,
    headers: Vec<Result<Header, String>>,
    shape: (u32, u32, u32),
    progress: &Progress,
) -> Result<(Dataset, Vec<Finding>), SourceError> {
    let items: Vec<Encoded<'_>> = listing.files.iter().map(|p| Encoded::File(p)).collect();
    let images = decode::decode_read(&items, headers, shape, progress).map_err(|problem| {
        SourceError::Images {
            path: root.to_owned(),
            problem,
        }
    })?;
    let names = listing.classes.into_iter().map(Some).collect();
    let dataset = Dataset {
        origin: Origin {
            path: root.display().to_string(),
            format: Format::ImageFolder,
            files: listing.files.len(),
            ignored_columns: Vec::new(),
        },
        ids: Ids::Paths(listing.ids),
        labels: Some(Labels::from_names("<folder>".into(), names)),
        payload: Payload::Images(images),
    };
    Ok((dataset, listing.findings))
}

fn is_image(path: &Path) -> bool {
    path.is_file() && super::extension(path).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

fn name_of(path: &Path) -> (String, bool) {
    match path.file_name() {
        Some(n) => match n.to_str() {
            Some(s) => (s.to_string(), true),
            None => (n.to_string_lossy().into_owned(), false),
        },
        None => (path.display().to_string(), true),
    }
}

pub(crate) fn list(root: &Path) -> Result<Listing, SourceError> {
    let mut listing = Listing {
        files: Vec::new(),
        ids: Vec::new(),
        classes: Vec::new(),
        findings: Vec::new(),
    };
    let mut ignored = Vec::new();
    let mut empty_classes = Vec::new();
    let mut non_utf8 = Vec::new();
    for class_dir in read_dir_sorted(root)? {
        if !class_dir.is_dir() {
            ignored.push(class_dir);
            continue;
        }
        let (class, utf8) = name_of(&class_dir);
        if !utf8 {
            non_utf8.push(class_dir.clone());
        }
        let mut found = 0;
        for file in read_dir_sorted(&class_dir)? {
            // A folder or a broken link named like an image is kept, so that it is reported
            // as unreadable rather than skipped.
            let looks_like_image =
                super::extension(&file).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()));
            if !(is_image(&file) || looks_like_image) {
                ignored.push(file);
                continue;
            }
            let (name, utf8) = name_of(&file);
            if !utf8 {
                non_utf8.push(file.clone());
            }
            listing.ids.push(format!("{class}/{name}"));
            listing.classes.push(class.clone());
            listing.files.push(file);
            found += 1;
        }
        if found == 0 {
            empty_classes.push(class);
        }
    }
    if listing.files.is_empty() {
        return Err(SourceError::NoImages(root.to_owned()));
    }
    listing.findings.extend(ignored_files(
        root,
        &ignored,
        "not a PNG or JPEG file in ROOT/<class>/",
    ));
    if !empty_classes.is_empty() {
        listing.findings.push(Finding::warning(
            Rule::SmallClass,
            format!(
                "{} class folder(s) hold no images: {}",
                empty_classes.len(),
                empty_classes.join(", ")
            ),
        ));
    }
    if !non_utf8.is_empty() {
        listing.findings.push(Finding::warning(
            Rule::NonUtf8Name,
            format!(
                "{} name(s) are not valid UTF-8 and are shown with U+FFFD: {}",
                non_utf8.len(),
                shorten(&non_utf8, root)
            ),
        ));
    }
    Ok(listing)
}

/// A warning listing files that were found but are not read.
pub fn ignored_files(root: &Path, files: &[PathBuf], why: &str) -> Option<Finding> {
    (!files.is_empty()).then(|| {
        Finding::warning(
            Rule::IgnoredFile,
            format!(
                "{} file(s) ignored ({why}): {}",
                files.len(),
                shorten(files, root)
            ),
        )
    })
}

/// The first few paths relative to `root`, for a one-line message.
fn shorten(paths: &[PathBuf], root: &Path) -> String {
    const SHOWN: usize = 5;
    let mut names: Vec<String> = paths
        .iter()
        .take(SHOWN)
        .map(|p| {
            p.strip_prefix(root)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    if paths.len() > SHOWN {
        names.push(format!("and {} more", paths.len() - SHOWN));
    }
    names.join(", ")
}
