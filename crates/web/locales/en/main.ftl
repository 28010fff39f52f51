# CareKey pages, English. Plain words, short sentences; say what happened and
# what to do next; always offer the clinic's help line.

skip-to-content = Skip to main content
language-switch = Español
language-switch-label = Leer esta página en español
portal-name = Patient portal
help-line = Need help? Call { $phone }.

signin-title = Sign in to your patient portal
signin-login-label = Username or email
signin-login-hint = If your family shares one email address, use your username.
signin-password-label = Password
signin-submit = Sign in
signin-failed = That didn't work. Check your username or email and your password, then try again.
signin-failed-more = After several tries, we may pause sign-in for a while to keep your account safe.
signin-signed-out = You're signed out. Thank you for visiting.
signin-session-ended = For your safety, you were signed out. Please sign in again.
signin-trouble = Having trouble signing in?
signin-call = Call the clinic at { $phone }. We're glad to help.

home-title = Your portal
home-greeting = Hello, { $name }
home-body = You're signed in to your patient portal.
home-signout = Sign out

error-title = Something went wrong
error-body = We couldn't finish that just now. Please wait a minute and try again.
form-expired-title = This page timed out
form-expired-body = For your safety, forms stop working after a while. Please try again on this fresh page.
not-found-title = We can't find that page
not-found-body = The link may be old or typed wrong.
back-to-signin = Go to the sign-in page

rule-min_length = Use at least { $min } characters.
rule-max_length = Use no more than { $max } characters.
rule-blocklist = This password is too common, so it is easy to guess.
rule-personal_info = Leave out your name, username, email and date of birth.
rule-history = You used this password before. Choose a new one.
rule-near_copy = This is too close to your old password. Choose something new.
rule-strength = This would be easy to guess. Try adding another word.
rule-classes = Use { $classes } of these: small letters, capital letters, numbers, symbols.
suggest-passphrase = A good choice: four or more words that don't go together, like "orange tugboat whistles quietly".
suggest-manager = A password manager can remember it for you.

home-change-password = Change my password
pw-title = Change your password
pw-current-label = Current password
pw-new-label = New password
pw-confirm-label = Type the new password again
pw-advice = Try a few words that are easy for you to remember and hard for others to guess. Spaces are fine.
pw-show = Show password
pw-hide = Hide password
pw-rules-title = Your new password needs:
pw-rule-length = At least { $min } characters
pw-rule-common = Not a common password
pw-rule-personal = No name, username, email or birth date
pw-rule-old = Not one of your recent passwords
pw-rule-strength = Hard to guess
pw-rule-met = Done:
pw-rule-unmet = Still needed:
pw-submit = Change password
pw-changed = Your password was changed. You are still signed in here; other devices were signed out.
pw-mismatch = The two new passwords are not the same. Please type them again.
pw-wrong-current = Your current password is not right. Please try again.
pw-fix = Please change your new password so it meets every item below.
pw-expired = Your clinic asks everyone to choose a new password from time to time. Please choose one now.
