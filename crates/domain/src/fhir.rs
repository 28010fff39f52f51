//! Reading patients from FHIR R4 (`Patient`, or a `Bundle` of them) as the
//! EHR sends them: the MRN from the identifier typed `MR` (HL7 v2-0203) or the
//! configured system, the official name, birth date, postal code, email and
//! phone, and the preferred language. An entry that cannot be a patient record
//! is skipped with its index and the reason; nothing else is lost.

use crate::identifiers::{DateOfBirth, Email, PhoneE164};
use crate::model::NewPatient;
use serde::Deserialize;

/// The HL7 v2 identifier type system, whose code `MR` marks an MRN.
pub const IDENTIFIER_TYPES: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

/// An entry left out of an import, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The entry's 0-based index in the Bundle (0 for a lone Patient).
    pub index: usize,
    pub reason: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Coding {
    system: Option<String>,
    code: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CodeableConcept {
    coding: Vec<Coding>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Identifier {
    r#type: Option<CodeableConcept>,
    system: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HumanName {
    r#use: Option<String>,
    family: Option<String>,
    given: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ContactPoint {
    system: Option<String>,
    value: Option<String>,
    r#use: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Address {
    postal_code: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Communication {
    language: CodeableConcept,
    preferred: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Patient {
    identifier: Vec<Identifier>,
    name: Vec<HumanName>,
    telecom: Vec<ContactPoint>,
    birth_date: Option<String>,
    address: Vec<Address>,
    communication: Vec<Communication>,
}

/// Why a whole document cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the document is neither a FHIR Patient nor a Bundle")]
    NotPatientOrBundle,
}

/// What a FHIR document holds: patients with their entry index, and the
/// entries skipped.
#[derive(Debug, Clone)]
pub struct FhirPatients {
    pub patients: Vec<(usize, NewPatient)>,
    pub skipped: Vec<Skipped>,
}

/// Reads every entry of a FHIR document.
pub fn read_patients(
    document: &serde_json::Value,
    mrn_system: Option<&str>,
    default_region: &str,
) -> Result<FhirPatients, ImportError> {
    let resources: Vec<&serde_json::Value> = match document["resourceType"].as_str() {
        Some("Patient") => vec![document],
        Some("Bundle") => document["entry"]
            .as_array()
            .map(|entries| entries.iter().map(|e| &e["resource"]).collect())
            .unwrap_or_default(),
        _ => return Err(ImportError::NotPatientOrBundle),
    };
    let mut patients = Vec::new();
    let mut skipped = Vec::new();
    for (index, resource) in resources.into_iter().enumerate() {
        match read_patient(resource, mrn_system, default_region) {
            Ok(patient) => patients.push((index, patient)),
            Err(reason) => skipped.push(Skipped { index, reason }),
        }
    }
    Ok(FhirPatients { patients, skipped })
}

fn read_patient(
    resource: &serde_json::Value,
    mrn_system: Option<&str>,
    default_region: &str,
) -> Result<NewPatient, String> {
    if resource["resourceType"].as_str() != Some("Patient") {
        return Err(format!(
            "not a Patient (resourceType {})",
            resource["resourceType"].as_str().unwrap_or("missing")
        ));
    }
    let patient: Patient = serde_json::from_value(resource.clone())
        .map_err(|e| format!("not a readable Patient: {e}"))?;
    let typed_mr = patient.identifier.iter().find(|id| {
        id.r#type.as_ref().is_some_and(|t| {
            t.coding.iter().any(|c| {
                c.code.as_deref() == Some("MR")
                    && c.system.as_deref().is_none_or(|s| s == IDENTIFIER_TYPES)
            })
        })
    });
    let by_system = || {
        mrn_system.and_then(|system| {
            patient
                .identifier
                .iter()
                .find(|id| id.system.as_deref() == Some(system))
        })
    };
    let mrn = typed_mr
        .or_else(by_system)
        .and_then(|id| id.value.as_deref())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or("no medical record number (an identifier typed MR)")?;
    let name = patient
        .name
        .iter()
        .find(|n| n.r#use.as_deref() == Some("official"))
        .or_else(|| patient.name.first())
        .ok_or("no name")?;
    let family_name = name.family.as_deref().map(str::trim).unwrap_or_default();
    let given_name = name.given.first().map(|g| g.trim()).unwrap_or_default();
    if family_name.is_empty() || given_name.is_empty() {
        return Err("no given and family name".into());
    }
    let born = patient.birth_date.as_deref().ok_or("no birthDate")?;
    let date_of_birth =
        DateOfBirth::parse(born).map_err(|_| format!("birthDate {born:?} is not a real date"))?;
    let mut email = None;
    let mut phone = None;
    for contact in &patient.telecom {
        let Some(value) = contact
            .value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        match contact.system.as_deref() {
            Some("email") if email.is_none() => {
                email = Some(Email::parse(value).map_err(|e| format!("email {value:?}: {e}"))?);
            }
            Some("phone" | "sms") => {
                let parsed = PhoneE164::parse(value, default_region)
                    .map_err(|e| format!("phone {value:?}: {e}"))?;
                // A mobile number wins over another kind.
                if phone.is_none() || contact.r#use.as_deref() == Some("mobile") {
                    phone = Some(parsed);
                }
            }
            _ => {}
        }
    }
    let preferred_language = patient
        .communication
        .iter()
        .find(|c| c.preferred == Some(true))
        .or_else(|| patient.communication.first())
        .and_then(|c| c.language.coding.first())
        .and_then(|c| c.code.clone());
    Ok(NewPatient {
        mrn: mrn.to_owned(),
        given_name: given_name.to_owned(),
        family_name: family_name.to_owned(),
        date_of_birth,
        postal_code: patient
            .address
            .iter()
            .find_map(|a| a.postal_code.as_deref().map(str::trim).map(str::to_owned)),
        preferred_language,
        email,
        phone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_patient_reads_with_every_field() {
        let document = serde_json::json!({
            "resourceType": "Patient",
            "identifier": [{"type": {"coding": [{"system": IDENTIFIER_TYPES, "code": "MR"}]}, "value": " MRN1 "}],
            "name": [{"use": "official", "family": "García López", "given": ["María", "José"]}],
            "telecom": [{"system": "email", "value": "MJ@Example.com"}, {"system": "phone", "value": "(210) 555-0142", "use": "mobile"}],
            "birthDate": "1958-03-14",
            "address": [{"postalCode": "78205"}],
            "communication": [{"language": {"coding": [{"code": "es"}]}, "preferred": true}]
        });
        let FhirPatients { patients, skipped } = read_patients(&document, None, "US").unwrap();
        assert!(skipped.is_empty());
        let patient = &patients[0].1;
        assert_eq!(patient.mrn, "MRN1");
        assert_eq!(
            (patient.given_name.as_str(), patient.family_name.as_str()),
            ("María", "García López")
        );
        assert_eq!(patient.email.as_ref().unwrap().as_str(), "mj@example.com");
        assert_eq!(patient.phone.as_ref().unwrap().as_str(), "+12105550142");
        assert_eq!(patient.preferred_language.as_deref(), Some("es"));
        assert_eq!(patient.postal_code.as_deref(), Some("78205"));
    }

    #[test]
    fn bad_entries_are_skipped_with_index_and_reason() {
        let document = serde_json::json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "A1"}],
                          "name": [{"family": "Doe", "given": ["Jo"]}], "birthDate": "1980-02-30"}},
            {"resource": {"resourceType": "Observation"}},
        ]});
        let FhirPatients { patients, skipped } =
            read_patients(&document, Some("urn:x"), "US").unwrap();
        assert!(patients.is_empty());
        assert_eq!(skipped[0].index, 0);
        assert!(
            skipped[0].reason.contains("not a real date"),
            "{:?}",
            skipped[0]
        );
        assert_eq!(skipped[1].index, 1);
        assert!(read_patients(&serde_json::json!({"resourceType": "Claim"}), None, "US").is_err());
    }
}
