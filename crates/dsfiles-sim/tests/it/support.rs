//! Shared helpers: a small raw GraphQL caller (not the project's client: the simulator must not
//! depend on it) and a walker that lists the files of a dossier JSON.

use anyhow::{Context as _, Result, ensure};
use dsfiles_sim::{SimConfig, SimHandle};
use serde_json::{Value, json};

/// The comprehensive query used by these tests: every file source, the deprecated singular
/// fields, fragments on interfaces, and `@include` switches.
pub const FULL_QUERY: &str = r#"
query demarcheFiles($demarche: Int!, $first: Int, $after: String, $updatedSince: ISO8601DateTime,
                    $includeGenerated: Boolean!, $includeEntreprise: Boolean!) {
  demarche(number: $demarche) {
    id number title state
    dossiers(first: $first, after: $after, updatedSince: $updatedSince) {
      pageInfo { hasNextPage endCursor }
      nodes { ...DossierFiles }
    }
  }
}

query dossierFiles($number: Int!, $includeGenerated: Boolean!, $includeEntreprise: Boolean!) {
  dossier(number: $number) { ...DossierFiles }
}

fragment DossierFiles on Dossier {
  __typename id number state archived dateDepot dateDerniereModification
  dateDerniereModificationChamps dateDerniereModificationAnnotations datePassageEnConstruction
  datePassageEnInstruction dateTraitement connectionUsager prefilled motivation
  usager { email }
  groupeInstructeur { id number label }
  demandeur {
    __typename
    ... on PersonnePhysique { civilite nom prenom email }
    ... on PersonneMorale { siret libelleNaf address { label postalCode cityName cityCode type }
      entreprise @include(if: $includeEntreprise) { siren raisonSociale
        attestationFiscaleAttachment { ...FileFields } attestationSocialeAttachment { ...FileFields } } }
  }
  traitements { state event dateTraitement }
  demarche { number title revision { id } }
  attestation { ...FileFields }
  motivationAttachment { ...FileFields }
  pdf @include(if: $includeGenerated) { ...FileFields }
  geojson @include(if: $includeGenerated) { ...FileFields }
  champs { ...ChampFiles ... on RepetitionChamp { rows { id champs { ...ChampFiles } } champs { id } } }
  annotations { ...ChampFiles ... on RepetitionChamp { rows { id champs { ...ChampFiles } } } }
  messages { id email body createdAt attachment { filename } attachments { ...FileFields } }
  avis { id question dateQuestion claimant { email } attachment { filename } attachments { ...FileFields } }
}

fragment ChampFiles on Champ {
  __typename id champDescriptorId label stringValue updatedAt prefilled
  ... on PieceJustificativeChamp { file { filename byteSize } files { ...FileFields } }
  ... on TextChamp { value }
  ... on DossierLinkChamp { dossier { number state } }
  ... on SiretChamp { etablissement { siret entreprise @include(if: $includeEntreprise) {
      attestationFiscaleAttachment { ...FileFields } attestationSocialeAttachment { ...FileFields } } } }
}

fragment FileFields on File {
  filename contentType byteSizeBigInt checksum createdAt url virusScanResult
}
"#;

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

pub fn http() -> reqwest::Client {
    // The workspace's reqwest has no bundled TLS provider (see dsfiles-sink's `tls` module).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a plain HTTP client builds")
}

/// POSTs a GraphQL request with `token` (None: no Authorization header).
pub async fn post(
    sim: &SimHandle,
    token: Option<&str>,
    query: &str,
    operation: Option<&str>,
    variables: Value,
) -> Result<Reply> {
    let mut request = http()
        .post(sim.endpoint())
        .json(&json!({"query": query, "variables": variables, "operationName": operation}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.context("POST graphql")?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        headers,
        body,
        text,
    })
}

/// A successful query: HTTP 200, no `errors`, no simulator bug.
pub async fn query_ok(
    sim: &SimHandle,
    query: &str,
    operation: Option<&str>,
    variables: Value,
) -> Result<Value> {
    let reply = post(sim, Some(&sim.token()), query, operation, variables.clone()).await?;
    ensure!(
        reply.status == 200,
        "HTTP {} for {operation:?} {variables}: {}",
        reply.status,
        reply.text
    );
    ensure!(
        reply.body.get("errors").is_none(),
        "errors for {operation:?} {variables}: {}",
        reply.body["errors"]
    );
    ensure!(sim.stats().sim_bugs == 0, "simulator bug reported");
    Ok(reply.body["data"].clone())
}

/// Pages through `demarche.dossiers` with FULL_QUERY; returns the dossiers and the page sizes.
pub async fn all_dossiers(
    sim: &SimHandle,
    first: i64,
    generated: bool,
    entreprise: bool,
) -> Result<(Vec<Value>, Vec<usize>)> {
    let mut after = Value::Null;
    let mut dossiers = Vec::new();
    let mut pages = Vec::new();
    loop {
        let variables = json!({"demarche": sim.demarche(), "first": first, "after": after,
                               "includeGenerated": generated, "includeEntreprise": entreprise});
        let data = query_ok(sim, FULL_QUERY, Some("demarcheFiles"), variables).await?;
        let connection = &data["demarche"]["dossiers"];
        let nodes = connection["nodes"].as_array().context("nodes")?;
        pages.push(nodes.len());
        dossiers.extend(nodes.iter().cloned());
        if connection["pageInfo"]["hasNextPage"] != json!(true) {
            return Ok((dossiers, pages));
        }
        after = connection["pageInfo"]["endCursor"].clone();
        ensure!(pages.len() < 1000, "pagination does not end");
    }
}

/// A file as found in a response: (dossier, source, label, filename, checksum, size, url).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub dossier: u64,
    pub source: String,
    pub label: String,
    pub row: Option<u32>,
    pub filename: String,
    pub checksum: String,
    pub byte_size: u64,
    pub url: String,
}

fn push(
    out: &mut Vec<Found>,
    dossier: u64,
    source: &str,
    label: &str,
    row: Option<u32>,
    file: &Value,
) {
    if file.is_null() {
        return;
    }
    out.push(Found {
        dossier,
        source: source.to_owned(),
        label: label.to_owned(),
        row,
        filename: file["filename"].as_str().unwrap_or_default().to_owned(),
        checksum: file["checksum"].as_str().unwrap_or_default().to_owned(),
        byte_size: file["byteSizeBigInt"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX),
        url: file["url"].as_str().unwrap_or_default().to_owned(),
    });
}

fn champ_files(out: &mut Vec<Found>, dossier: u64, source: &str, champs: &Value, row: Option<u32>) {
    for champ in champs.as_array().into_iter().flatten() {
        let label = champ["label"].as_str().unwrap_or_default();
        for file in champ["files"].as_array().into_iter().flatten() {
            push(out, dossier, source, label, row, file);
        }
        for (r, row_value) in champ["rows"].as_array().into_iter().flatten().enumerate() {
            champ_files(out, dossier, source, &row_value["champs"], Some(r as u32));
        }
        let etablissement = &champ["etablissement"];
        let name = etablissement["siret"].as_str().unwrap_or(label);
        entreprise_files(out, dossier, name, row, &etablissement["entreprise"]);
    }
}

/// Every file of a dossier selected with `DossierFiles` (deprecated copies not counted).
pub fn files_of(dossier: &Value) -> Vec<Found> {
    let number = dossier["number"].as_u64().unwrap_or_default();
    let mut out = Vec::new();
    champ_files(&mut out, number, "champ", &dossier["champs"], None);
    champ_files(
        &mut out,
        number,
        "annotation",
        &dossier["annotations"],
        None,
    );
    for message in dossier["messages"].as_array().into_iter().flatten() {
        for file in message["attachments"].as_array().into_iter().flatten() {
            push(&mut out, number, "message", "message", None, file);
        }
    }
    for avis in dossier["avis"].as_array().into_iter().flatten() {
        for file in avis["attachments"].as_array().into_iter().flatten() {
            push(&mut out, number, "avis", "avis", None, file);
        }
    }
    push(
        &mut out,
        number,
        "attestation",
        "attestation",
        None,
        &dossier["attestation"],
    );
    push(
        &mut out,
        number,
        "motivation",
        "motivation",
        None,
        &dossier["motivationAttachment"],
    );
    push(&mut out, number, "pdf", "dossier", None, &dossier["pdf"]);
    push(
        &mut out,
        number,
        "geojson",
        "geojson",
        None,
        &dossier["geojson"],
    );
    let demandeur = &dossier["demandeur"];
    let name = demandeur["siret"].as_str().unwrap_or("demandeur");
    entreprise_files(&mut out, number, name, None, &demandeur["entreprise"]);
    out
}

/// The API Entreprise attestations of an établissement named `name` (its SIRET), labelled
/// `attestation fiscale <name>` and `attestation sociale <name>` as dsfiles names them.
fn entreprise_files(
    out: &mut Vec<Found>,
    dossier: u64,
    name: &str,
    row: Option<u32>,
    entreprise: &Value,
) {
    for (kind, field) in [
        ("fiscale", "attestationFiscaleAttachment"),
        ("sociale", "attestationSocialeAttachment"),
    ] {
        let label = format!("attestation {kind} {name}");
        push(out, dossier, "entreprise", &label, row, &entreprise[field]);
    }
}

pub async fn sim(config: SimConfig) -> SimHandle {
    dsfiles_sim::start(config)
        .await
        .expect("the simulator starts")
}

/// GETs `url` (no redirect following), with optional extra headers.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Result<reqwest::Response> {
    let mut request = http().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    Ok(request.send().await?)
}

/// Follows the API host's redirect to the file host; returns the file host URL.
pub async fn storage_url(api_url: &str) -> Result<String> {
    let response = get(api_url, &[]).await?;
    ensure!(
        response.status() == 302,
        "expected a redirect from {api_url}, got {}",
        response.status()
    );
    Ok(response.headers()[reqwest::header::LOCATION]
        .to_str()?
        .to_owned())
}

pub fn md5_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(bytes))
}
