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
