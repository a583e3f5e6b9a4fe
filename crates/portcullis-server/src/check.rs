//! `portcullis check`: the configuration was validated when it was loaded; this checks the
//! database without changing it (SQLite's integrity check, Portcullis's tables, the schema
//! version) and prints the effective settings, secrets masked.

use crate::Failure;
use crate::config::Config;

pub async fn run(config: &Config) -> Result<(), Failure> {
    // the branding's logo and templates: read, compiled and rendered once, as `serve` does
    crate::pages::load_ui(config).map_err(Failure::Usage)?;
    let file = if config.storage.database_url.is_empty() {
        Some(config.database_path())
    } else {
        portcullis_store::sqlite_url_file(&config.storage.database_url)
    };
    let database = match file {
        // an in-memory database: nothing on disk to check
        None => "# database: in memory\n".to_owned(),
        Some(file) => {
            if !file.exists() {
                return Err(Failure::Usage(format!(
                    "the database {} does not exist (run `portcullis serve` first, or pass --data-dir)",
                    file.display()
                )));
            }
            let version = portcullis_store::check_database(&file)
                .await
                .map_err(|problem| Failure::Runtime(format!("the database {} {problem}", file.display())))?;
            format!(
                "# database {}: integrity ok, schema version {version}\n",
                file.display()
            )
        }
    };
    // the database line is a TOML comment: the whole output still parses as TOML
    print!("{}{database}", config.to_masked_toml());
    Ok(())
}
