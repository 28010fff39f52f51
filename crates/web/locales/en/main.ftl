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

recovery-accepted = If the details you gave match an account, we are sending a message now. It can take a few minutes to arrive.

signin-forgot = Forgot your password or username?
signin-reset-done = Your password was changed. Please sign in with your new password.
link-forgot-password = Forgot your password?
link-forgot-username = Forgot your username?
link-have-a-code = Have a code from the clinic?
other-ways = Other ways to get in
still-stuck = Still stuck?

forgot-password-title = Forgot your password?
forgot-password-intro = We'll send you a way to choose a new one. It only takes a minute.
forgot-password-identifier = Your username, email, or mobile phone number
forgot-password-identifier-hint = Use whichever one you remember.
forgot-password-channel = How should we reach you?
forgot-username-title = Forgot your username?
forgot-username-intro = We'll send your username to the email or phone number the clinic has for you.
forgot-username-identifier = Your email or mobile phone number
forgot-username-identifier-hint = Use the one you gave the clinic.
forgot-username-channel = How should we send it?
forgot-fill-in = Fill in { $what }.
forgot-submit = Send
forgot-bad-birth-date = Please enter your whole date of birth: month, day, and a 4-digit year.
forgot-missing = Please fill in the details asked for above.
forgot-unreadable = We couldn't read that. Please check the email address or phone number and try again.
identifier-username = your username
identifier-email = your email
identifier-phone = your mobile phone number
identifier-date_of_birth = your date of birth
identifier-username-label = Username
identifier-email-label = Email
identifier-phone-label = Mobile phone number
word-and = and
word-or = or
channel-password-email = Email me a link
channel-password-sms = Text me a code
channel-password-voice = Call me with a code
channel-username-email = Email it to me
channel-username-sms = Text it to me
channel-username-voice = Call me and spell it out
birth-legend = Date of birth
birth-hint = For example: 3 27 1958
birth-month = Month
birth-day = Day
birth-year = Year
too-many-title = Please wait a little while
too-many-body = We got many requests like this one, so we paused them for a short time to keep accounts safe. Please try again in 15 minutes, or call the clinic.

recover-title-email = Check your email
recover-title-sms = Check your text messages
recover-title-voice = Answer your phone
recover-sent-password-email = If the details you gave match an account, we sent an email with a link and a code.
recover-sent-password-sms = If the details you gave match an account, we sent a text message with a code.
recover-sent-password-voice = If the details you gave match an account, we are calling the phone number on file. The call reads a code out loud, twice.
recover-sent-username-email = If the details you gave match an account, we sent an email with your username.
recover-sent-username-sms = If the details you gave match an account, we sent a text message with your username.
recover-sent-username-voice = If the details you gave match an account, we are calling the phone number on file to spell out your username.
recover-wait-email = It can take a few minutes to arrive. You can open the link in the email, or type the code here.
recover-wait-sms = It usually arrives within a minute.
recover-wait-voice = The call comes within a minute. Have a pen ready.
recover-code-minutes = The code works for { $minutes } minutes.
recover-code-label = Code
recover-code-hint = Type the 6 numbers from the message.
recover-code-submit = Continue
recover-wrong-code = That code is not right. Please check it and try again. You can try { $left } more { $left ->
    [one] time
   *[other] times
}.
recover-none-title = Didn't get it?
recover-none-spam = Look in your spam or junk folder.
recover-none-wait = Wait 5 minutes, then
recover-none-again = ask again.
recover-none-old-email = Is the email we have old?
recover-none-by-phone = Get your username by text message instead.
recover-none-call = Call the clinic at { $phone }. We can check your details and help you get in.
code-expired-title = This code has expired
code-expired-body = Codes work for a short time and only once, to keep your account safe. Please ask for a new one.
start-again = Ask for a new code

choose-title = Choose your account
choose-body = This email or phone number is used by more than one account. Which account needs a new password?
choose-account = New password for { $username }

reset-title = Choose a new password
reset-for = For the account { $username }.
reset-submit = Save my new password
reset-after = After you save it, sign in with your new password. We will let you know by email or text that it changed.
link-expired-title = This link has expired
link-expired-body = Reset links work for a short time and only once, to keep your account safe. You can get a new one now.
link-expired-renew = Email me a new link

have-code-title = Enter the code from the clinic
have-code-intro = If clinic staff gave you a code, enter it here with your date of birth. Then you can choose a new password.
have-code-label = Code
have-code-hint = It looks like 7KQ4-M2XD-9PRT. Small letters and dashes are fine.
have-code-submit = Continue
have-code-wrong = That code and date of birth don't match. Please check both and try again. A code works for 24 hours, one time only.
have-code-none = No code?
