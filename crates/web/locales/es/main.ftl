# Páginas de CareKey, español. Frases cortas y claras; decir qué pasó y qué
# hacer ahora; ofrecer siempre el teléfono de ayuda de la clínica.

skip-to-content = Ir al contenido principal
language-switch = English
language-switch-label = Read this page in English
portal-name = Portal del paciente
help-line = ¿Necesita ayuda? Llame al { $phone }.

signin-title = Entre a su portal del paciente
signin-login-label = Nombre de usuario o correo electrónico
signin-login-hint = Si su familia comparte un correo electrónico, use su nombre de usuario.
signin-password-label = Contraseña
signin-submit = Entrar
signin-failed = No pudimos abrir su cuenta. Revise su nombre de usuario o correo y su contraseña, y vuelva a intentarlo.
signin-failed-more = Después de varios intentos, podemos pausar la entrada por un tiempo para proteger su cuenta.
signin-signed-out = Ya salió de su cuenta. Gracias por su visita.
signin-session-ended = Por su seguridad, cerramos su sesión. Por favor, vuelva a entrar.
signin-trouble = ¿Tiene problemas para entrar?
signin-call = Llame a la clínica al { $phone }. Con gusto le ayudamos.

home-title = Su portal
home-greeting = Hola, { $name }
home-body = Ya entró a su portal del paciente.
home-signout = Salir

error-title = Algo salió mal
error-body = No pudimos terminar eso ahora. Espere un minuto y vuelva a intentarlo.
form-expired-title = Esta página caducó
form-expired-body = Por su seguridad, los formularios dejan de funcionar después de un tiempo. Vuelva a intentarlo en esta página nueva.
not-found-title = No encontramos esa página
not-found-body = Puede que el enlace sea antiguo o esté mal escrito.
back-to-signin = Ir a la página para entrar

rule-min_length = Use por lo menos { $min } caracteres.
rule-max_length = Use como máximo { $max } caracteres.
rule-blocklist = Esta contraseña es muy común, así que es fácil de adivinar.
rule-personal_info = No use su nombre, su nombre de usuario, su correo ni su fecha de nacimiento.
rule-history = Ya usó esta contraseña antes. Elija una nueva.
rule-near_copy = Se parece demasiado a su contraseña anterior. Elija algo nuevo.
rule-strength = Sería fácil de adivinar. Pruebe a agregar otra palabra.
rule-classes = Use { $classes } de estos: minúsculas, mayúsculas, números, símbolos.
suggest-passphrase = Una buena idea: cuatro o más palabras que no tengan relación, como "naranja remolcador silba tranquilo".
suggest-manager = Un administrador de contraseñas puede recordarla por usted.

home-change-password = Cambiar mi contraseña
pw-title = Cambie su contraseña
pw-current-label = Contraseña actual
pw-new-label = Contraseña nueva
pw-confirm-label = Escriba otra vez la contraseña nueva
pw-advice = Pruebe con unas palabras fáciles de recordar para usted y difíciles de adivinar para otros. Puede usar espacios.
pw-show = Mostrar contraseña
pw-hide = Ocultar contraseña
pw-rules-title = Su contraseña nueva necesita:
pw-rule-length = Por lo menos { $min } caracteres
pw-rule-common = No ser una contraseña común
pw-rule-personal = No tener su nombre, usuario, correo ni fecha de nacimiento
pw-rule-old = No ser una de sus contraseñas recientes
pw-rule-strength = Ser difícil de adivinar
pw-rule-met = Listo:
pw-rule-unmet = Falta:
pw-submit = Cambiar contraseña
pw-changed = Cambiamos su contraseña. Sigue con la sesión abierta aquí; en los demás dispositivos se cerró.
pw-mismatch = Las dos contraseñas nuevas no son iguales. Escríbalas otra vez.
pw-wrong-current = Su contraseña actual no es correcta. Inténtelo otra vez.
pw-fix = Cambie su contraseña nueva para que cumpla con todo lo de abajo.
pw-expired = Su clínica pide elegir una contraseña nueva cada cierto tiempo. Por favor, elija una ahora.

recovery-accepted = Si los datos que nos dio coinciden con una cuenta, le estamos enviando un mensaje. Puede tardar unos minutos en llegar.

signin-forgot = ¿Olvidó su contraseña o su nombre de usuario?
signin-reset-done = Se cambió su contraseña. Inicie sesión con su contraseña nueva.
link-forgot-password = ¿Olvidó su contraseña?
link-forgot-username = ¿Olvidó su nombre de usuario?
link-have-a-code = ¿La clínica le dio un código?
other-ways = Otras maneras de entrar
still-stuck = ¿Todavía no puede entrar?

forgot-password-title = ¿Olvidó su contraseña?
forgot-password-intro = Le enviaremos una manera de elegir una nueva. Solo toma un minuto.
forgot-password-identifier = Su nombre de usuario, correo electrónico o número de celular
forgot-password-identifier-hint = Use el que recuerde.
forgot-password-channel = ¿Cómo le contactamos?
forgot-username-title = ¿Olvidó su nombre de usuario?
forgot-username-intro = Le enviaremos su nombre de usuario al correo o al teléfono que tiene la clínica.
forgot-username-identifier = Su correo electrónico o número de celular
forgot-username-identifier-hint = Use el que le dio a la clínica.
forgot-username-channel = ¿Cómo se lo enviamos?
forgot-fill-in = Escriba { $what }.
forgot-submit = Enviar
forgot-bad-birth-date = Escriba su fecha de nacimiento completa: mes, día y año con 4 números.
forgot-missing = Por favor, complete los datos que se piden arriba.
forgot-unreadable = No pudimos leer eso. Revise el correo o el número de teléfono e inténtelo otra vez.
identifier-username = su nombre de usuario
identifier-email = su correo electrónico
identifier-phone = su número de celular
identifier-date_of_birth = su fecha de nacimiento
identifier-username-label = Nombre de usuario
identifier-email-label = Correo electrónico
identifier-phone-label = Número de celular
word-and = y
word-or = o
channel-password-email = Envíenme un enlace por correo
channel-password-sms = Envíenme un código por mensaje de texto
channel-password-voice = Llámenme con un código
channel-username-email = Envíenmelo por correo
channel-username-sms = Envíenmelo por mensaje de texto
channel-username-voice = Llámenme y deletréenlo
birth-legend = Fecha de nacimiento
birth-hint = Por ejemplo: 3 27 1958 (mes, día, año)
birth-month = Mes
birth-day = Día
birth-year = Año
too-many-title = Por favor, espere un momento
too-many-body = Recibimos muchas solicitudes como esta, así que las pausamos por poco tiempo para proteger las cuentas. Inténtelo otra vez en 15 minutos o llame a la clínica.

recover-title-email = Revise su correo
recover-title-sms = Revise sus mensajes de texto
recover-title-voice = Conteste su teléfono
recover-sent-password-email = Si los datos que nos dio coinciden con una cuenta, le enviamos un correo con un enlace y un código.
recover-sent-password-sms = Si los datos que nos dio coinciden con una cuenta, le enviamos un mensaje de texto con un código.
recover-sent-password-voice = Si los datos que nos dio coinciden con una cuenta, estamos llamando al teléfono que tenemos. La llamada le dirá un código dos veces.
recover-sent-username-email = Si los datos que nos dio coinciden con una cuenta, le enviamos un correo con su nombre de usuario.
recover-sent-username-sms = Si los datos que nos dio coinciden con una cuenta, le enviamos un mensaje de texto con su nombre de usuario.
recover-sent-username-voice = Si los datos que nos dio coinciden con una cuenta, estamos llamando al teléfono que tenemos para deletrearle su nombre de usuario.
recover-wait-email = Puede tardar unos minutos en llegar. Puede abrir el enlace del correo o escribir el código aquí.
recover-wait-sms = Suele llegar en menos de un minuto.
recover-wait-voice = La llamada llega en menos de un minuto. Tenga a mano papel y lápiz.
recover-code-minutes = El código funciona durante { $minutes } minutos.
recover-code-label = Código
recover-code-hint = Escriba los 6 números del mensaje.
recover-code-submit = Continuar
recover-wrong-code = Ese código no es correcto. Revíselo e inténtelo otra vez. Le { $left ->
    [one] queda { $left } intento
   *[other] quedan { $left } intentos
}.
recover-none-title = ¿No le llegó?
recover-none-spam = Busque en la carpeta de correo no deseado (spam).
recover-none-wait = Espere 5 minutos y luego
recover-none-again = pídalo otra vez.
recover-none-old-email = ¿El correo que tenemos es viejo?
recover-none-by-phone = Reciba su nombre de usuario por mensaje de texto.
recover-none-call = Llame a la clínica al { $phone }. Podemos revisar sus datos y ayudarle a entrar.
code-expired-title = Este código ya venció
code-expired-body = Los códigos funcionan por poco tiempo y una sola vez, para proteger su cuenta. Por favor, pida uno nuevo.
start-again = Pedir un código nuevo

choose-title = Elija su cuenta
choose-body = Este correo o teléfono lo usa más de una cuenta. ¿Qué cuenta necesita una contraseña nueva?
choose-account = Contraseña nueva para { $username }

reset-title = Elija una contraseña nueva
reset-for = Para la cuenta { $username }.
reset-submit = Guardar mi contraseña nueva
reset-after = Después de guardarla, inicie sesión con su contraseña nueva. Le avisaremos por correo o mensaje de texto que se cambió.
link-expired-title = Este enlace ya venció
link-expired-body = Los enlaces para cambiar la contraseña funcionan por poco tiempo y una sola vez, para proteger su cuenta. Puede recibir uno nuevo ahora.
link-expired-renew = Envíenme un enlace nuevo por correo

have-code-title = Escriba el código de la clínica
have-code-intro = Si el personal de la clínica le dio un código, escríbalo aquí con su fecha de nacimiento. Luego podrá elegir una contraseña nueva.
have-code-label = Código
have-code-hint = Se parece a 7KQ4-M2XD-9PRT. No importa si usa minúsculas o guiones.
have-code-submit = Continuar
have-code-wrong = El código y la fecha de nacimiento no coinciden. Revise los dos e inténtelo otra vez. Un código funciona durante 24 horas y una sola vez.
have-code-none = ¿No tiene código?
