# Mensajes a pacientes, español. Claros y amables; cada uno dice qué hacer si
# el paciente no lo pidió y da el teléfono de ayuda. Nunca una contraseña.

greeting = Hola, { $name }:
greeting-anonymous = Hola:
not-you = Si usted no lo pidió, puede ignorar este mensaje. No ha cambiado nada.
worried = Si algo le preocupa, llámenos al { $phone }.
signoff = — { $clinic }
valid-for = Funciona durante { $minutes } minutos y una sola vez.

password_reset-subject = Cambie la contraseña de su portal de { $clinic }
password_reset-intro = Recibimos una solicitud para cambiar la contraseña de su portal del paciente.
password_reset-link = Para elegir una contraseña nueva, abra este enlace:
password_reset-button = Elegir una contraseña nueva
password_reset-code = O escriba este código en la página para cambiar la contraseña:
password_reset-sms = { $clinic }: su código para cambiar la contraseña es { $code }. Funciona durante { $minutes } minutos. ¿No lo pidió? Ignore este mensaje o llame al { $phone }.
password_reset-link-sms = { $clinic }: para cambiar la contraseña de su portal, abra { $link } (funciona { $minutes } minutos). ¿No lo pidió? Ignore este mensaje o llame al { $phone }.
password_reset-voice = Hola. Le llamamos de { $clinic }. Su código para cambiar la contraseña es:
voice-again = Otra vez, su código es:
voice-goodbye = Si usted no pidió este código, puede colgar. Adiós.

username_reminder-subject = Su nombre de usuario del portal de { $clinic }
username_reminder-intro = Usted pidió el nombre de usuario de su cuenta del portal del paciente.
username_reminder-one = Su nombre de usuario es:
username_reminder-many = Este contacto lo usa más de una cuenta. Los nombres de usuario son:
username_reminder-sms = { $clinic }: su nombre de usuario del portal: { $usernames }. ¿No lo pidió? Llame al { $phone }.

password_changed-subject = Se cambió la contraseña de su portal de { $clinic }
password_changed-intro = Se acaba de cambiar la contraseña de su portal del paciente y se cerró la sesión en todos sus dispositivos.
password_changed-ok = Si fue usted, no tiene que hacer nada más.
password_changed-not-you = Si usted no la cambió, llámenos enseguida al { $phone }.
password_changed-sms = { $clinic }: se cambió la contraseña de su portal. ¿No fue usted? Llame enseguida al { $phone }.

account_locked-subject = Pausamos la entrada a su portal de { $clinic }
account_locked-intro = Alguien escribió mal la contraseña de su cuenta varias veces, así que pausamos la entrada para protegerla.
account_locked-next = Puede elegir una contraseña nueva ahora y su cuenta se abrirá enseguida:
account_locked-button = Cambiar mi contraseña
account_locked-sms = { $clinic }: pausamos la entrada a su portal tras varias contraseñas equivocadas. Cámbiela en { $link } o llame al { $phone }.

invitation-subject = Su invitación al portal del paciente de { $clinic }
invitation-intro = Le invitamos a usar nuestro portal del paciente para ver sus citas, resultados y mensajes.
invitation-steps = Vaya a la página de abajo y escriba este código de activación junto con su fecha de nacimiento:
invitation-button = Crear mi cuenta del portal
invitation-expiry = El código funciona durante { $days } días.
invitation-sms = { $clinic }: su código de activación del portal es { $code }. Cree su cuenta en { $link }. ¿Preguntas? Llame al { $phone }.

contact_verification-subject = Su código de confirmación de { $clinic }
contact_verification-intro = Use este código para confirmar este contacto en su portal del paciente:
contact_verification-sms = { $clinic }: su código de confirmación es { $code }. Funciona durante { $minutes } minutos. ¿No lo pidió? Llame al { $phone }.
contact_verification-voice = Hola. Le llamamos de { $clinic }. Su código de confirmación es:

contact_changed-subject = Cambiaron los datos de contacto de su portal de { $clinic }
contact_changed-intro = Se acaba de cambiar el correo electrónico o el teléfono de su cuenta del portal. Desde ahora usaremos el nuevo.
contact_changed-not-you = Si usted no hizo este cambio, llámenos enseguida al { $phone }.
contact_changed-sms = { $clinic }: cambiaron los datos de contacto de su portal. ¿No fue usted? Llame enseguida al { $phone }.

password_reset-links = Esta dirección de correo la usa más de una cuenta. Elija la cuenta cuya contraseña quiere cambiar:
password_reset-button-for = Cambiar la contraseña de { $username }
username_reminder-voice = Hola. Le llamamos de { $clinic }. Su nombre de usuario del portal se deletrea así:
username_reminder-voice-again = Otra vez, su nombre de usuario se deletrea así:
spell-dot = punto
spell-underscore = guion bajo
spell-dash = guion
spell-and = Y otro nombre de usuario:

account_help-subject = El personal de { $clinic } le ayudó con su cuenta del portal
account_help-intro = Una persona de nuestro personal acaba de ayudarle con su cuenta del portal del paciente.
account_help-code = Creó un código de un solo uso para que pueda elegir una contraseña nueva. Funciona durante 24 horas.
account_help-unlock = Desbloqueó su cuenta, así que ya puede iniciar sesión.
account_help-disable = Desactivó su cuenta del portal. Llámenos si tiene preguntas.
account_help-not-you = Si usted no lo pidió, llámenos de inmediato al { $phone }.
account_help-sms-code = { $clinic }: el personal creó un código de un solo uso para su cuenta del portal. ¿No fue usted? Llame de inmediato al { $phone }.
account_help-sms-unlock = { $clinic }: el personal desbloqueó su cuenta del portal. ¿No fue usted? Llame de inmediato al { $phone }.
account_help-sms-disable = { $clinic }: se desactivó su cuenta del portal. ¿Preguntas? Llame al { $phone }.
