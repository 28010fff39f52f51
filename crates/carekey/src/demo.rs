//! The demo clinic `carekey serve --demo` seeds: a few patients with accounts
//! that show the product's real cases (Spanish, a shared family email, a
//! landline), and a front-desk user. Seeding twice changes nothing.

use carekey_domain::audit::Actor;
use carekey_domain::identifiers::{DateOfBirth, Email, PhoneE164, Username};
use carekey_domain::model::{NewPatient, StaffRole};
use carekey_domain::secret::Password;
use carekey_service::{ServiceError, Services};

/// Every demo patient's password (a passphrase, as the policy encourages).
pub const PATIENT_PASSWORD: &str = "blue heron walks the marsh";
/// The demo front-desk user's password.
pub const STAFF_PASSWORD: &str = "front desk demo passphrase";

struct DemoPatient {
    mrn: &'static str,
    given: &'static str,
    family: &'static str,
    born: &'static str,
    language: &'static str,
    email: Option<&'static str>,
    phone: Option<&'static str>,
    username: &'static str,
}

const PATIENTS: [DemoPatient; 5] = [
    DemoPatient {
        mrn: "DEMO-1001",
        given: "Alex",
        family: "Rivera",
        born: "1984-06-02",
        language: "en",
        email: Some("alex.rivera@example.com"),
        phone: Some("+12105550100"),
        username: "alex.rivera",
    },
    DemoPatient {
        mrn: "DEMO-1002",
        given: "María",
        family: "García López",
        born: "1958-03-14",
        language: "es",
        email: Some("maria.garcia@example.com"),
        phone: Some("+12105550142"),
        username: "maria.garcia",
    },
    DemoPatient {
        mrn: "DEMO-1003",
        given: "Sarah",
        family: "Thompson",
        born: "1979-09-21",
        language: "en",
        email: Some("thompson.family@example.com"),
        phone: Some("+12105550123"),
        username: "sarah.thompson",
    },
    DemoPatient {
        mrn: "DEMO-1004",
        given: "Ethan",
        family: "Thompson",
        born: "2009-04-11",
        language: "en",
        email: Some("thompson.family@example.com"),
        phone: None,
        username: "ethan.thompson",
    },
    DemoPatient {
        mrn: "DEMO-1005",
        given: "Dorothy",
        family: "Williams",
        born: "1941-12-30",
        language: "en",
        email: None,
        phone: Some("+12105550188"),
        username: "dorothy.williams",
    },
];

/// Seeds the demo clinic unless it is already there; returns whether it seeded.
pub async fn seed(services: &Services) -> anyhow::Result<bool> {
    if services
        .store
        .find_patient_by_mrn(PATIENTS[0].mrn)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let password = Password::new(PATIENT_PASSWORD);
    for demo in &PATIENTS {
        let patient = NewPatient {
            mrn: demo.mrn.into(),
            given_name: demo.given.into(),
            family_name: demo.family.into(),
            date_of_birth: DateOfBirth::parse(demo.born)?,
            postal_code: Some("78205".into()),
            preferred_language: Some(demo.language.into()),
            email: demo.email.map(Email::parse).transpose()?,
            phone: demo.phone.map(|p| PhoneE164::parse(p, "US")).transpose()?,
        };
        let patient_id = services.create_patient(&patient, Actor::System).await?;
        services
            .create_account(
                patient_id,
                Username::parse(demo.username)?,
                &password,
                Actor::System,
            )
            .await?;
    }
    match services
        .create_staff(
            Username::parse("frontdesk")?,
            StaffRole::FrontDesk,
            &Password::new(STAFF_PASSWORD),
            Actor::System,
        )
        .await
    {
        Ok(_) | Err(ServiceError::Conflict(_)) => {}
        Err(error) => return Err(error.into()),
    }
    Ok(true)
}

/// What `serve --demo` prints so a newcomer can sign in at once.
pub fn instructions(public_url: &str) -> String {
    let mut text = format!(
        "\nCareKey demo clinic is ready at {public_url}/signin\n\nPatients (password for all: \"{PATIENT_PASSWORD}\"):\n"
    );
    for demo in &PATIENTS {
        text.push_str(&format!(
            "  {:<18} {} {} ({}{})\n",
            demo.username,
            demo.given,
            demo.family,
            demo.language,
            demo.email.map(|e| format!(", {e}")).unwrap_or_default()
        ));
    }
    text.push_str(&format!(
        "\nStaff console: {public_url}/staff/signin as frontdesk / \"{STAFF_PASSWORD}\" (front_desk);\n\
         the first sign-in asks you to scan a QR code with an authenticator app.\n"
    ));
    text.push_str(&format!(
        "Messages patients would receive: {public_url}/dev/mailbox\n"
    ));
    text
}
