//! The stylesheet and the pages' scripts, compiled into the binary so that it runs
//! from any folder (they are small: a few kilobytes each).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::error::{AppError, AppResult};

/// (name, content, content type) of every file under `/static/`.
const FILES: [(&str, &str, &str); 3] = [
    ("app.css", include_str!("../../static/app.css"), "text/css; charset=utf-8"),
    ("annotate.js", include_str!("../../static/annotate.js"), "text/javascript; charset=utf-8"),
    ("job.js", include_str!("../../static/job.js"), "text/javascript; charset=utf-8"),
];

pub async fn serve(name: web::Path<String>) -> AppResult<HttpResponse> {
    let (_, content, kind) = FILES.iter().find(|(n, _, _)| *n == name.as_str()).ok_or(AppError::NotFound)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, *kind))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(*content))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_in_static_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<&str> = super::FILES.iter().map(|f| f.0).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }
}
