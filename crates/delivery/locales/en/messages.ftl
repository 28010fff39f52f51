# Messages to patients, English. Plain and kind; each says what to do if the
# patient did not ask for it and names the clinic's help line. Never a password.

greeting = Hello { $name },
greeting-anonymous = Hello,
not-you = If you did not ask for this, you can ignore this message. Nothing has changed.
worried = If you are worried, call us at { $phone }.
signoff = — { $clinic }
valid-for = This works for { $minutes } minutes, one time only.

password_reset-subject = Reset your { $clinic } portal password
password_reset-intro = We got a request to reset the password for your patient portal.
password_reset-link = To choose a new password, open this link:
password_reset-button = Choose a new password
password_reset-code = Or type this code on the reset page:
password_reset-sms = { $clinic }: your password reset code is { $code }. It works for { $minutes } minutes. Didn't ask? Ignore this text or call { $phone }.
password_reset-link-sms = { $clinic }: to reset your portal password, open { $link } (works for { $minutes } minutes). Didn't ask? Ignore this text or call { $phone }.
password_reset-voice = Hello. This is { $clinic }. Your password reset code is:
voice-again = Again, your code is:
voice-goodbye = If you did not ask for this code, you can hang up. Goodbye.

username_reminder-subject = Your { $clinic } portal username
username_reminder-intro = You asked for the username of your patient portal account.
username_reminder-one = Your username is:
username_reminder-many = This contact is used by more than one account. The usernames are:
username_reminder-sms = { $clinic }: your portal username: { $usernames }. Didn't ask? Call { $phone }.

password_changed-subject = Your { $clinic } portal password was changed
password_changed-intro = The password for your patient portal was just changed, and every device was signed out.
password_changed-ok = If you did this, there is nothing else to do.
password_changed-not-you = If you did not change it, call us right away at { $phone }.
password_changed-sms = { $clinic }: your portal password was changed. Not you? Call { $phone } right away.

account_locked-subject = Sign-in to your { $clinic } portal is paused
account_locked-intro = Someone typed the wrong password for your portal account many times. To keep it safe, we paused sign-in.
account_locked-next = You can choose a new password now, and it will open your account right away:
account_locked-button = Reset my password
account_locked-sms = { $clinic }: sign-in to your portal is paused after several wrong passwords. Reset it at { $link } or call { $phone }.

invitation-subject = Your invitation to the { $clinic } patient portal
invitation-intro = You are invited to use our patient portal to see visits, results and messages.
invitation-steps = Go to the page below and enter this activation code with your date of birth:
invitation-button = Set up my portal account
invitation-expiry = The code works for { $days } days.
invitation-sms = { $clinic }: your patient portal activation code is { $code }. Set up your account at { $link }. Questions? Call { $phone }.

contact_verification-subject = Your { $clinic } confirmation code
contact_verification-intro = Use this code to confirm this contact for your patient portal:
contact_verification-sms = { $clinic }: your confirmation code is { $code }. It works for { $minutes } minutes. Didn't ask? Call { $phone }.
contact_verification-voice = Hello. This is { $clinic }. Your confirmation code is:

contact_changed-subject = Your { $clinic } portal contact details changed
contact_changed-intro = The email or phone number on your patient portal account was just changed. We will use the new one from now on.
contact_changed-not-you = If you did not make this change, call us right away at { $phone }.
contact_changed-sms = { $clinic }: the contact details on your portal account were changed. Not you? Call { $phone } right away.

password_reset-links = This email address is used by more than one account. Choose the account to reset:
password_reset-button-for = Reset the password for { $username }
username_reminder-voice = Hello. This is { $clinic }. Your portal username is spelled:
username_reminder-voice-again = Again, your username is spelled:
spell-dot = dot
spell-underscore = underscore
spell-dash = dash
spell-and = And another username:

account_help-subject = Clinic staff helped with your { $clinic } portal account
account_help-intro = A member of our staff just helped with your patient portal account.
account_help-code = They made a one-time code so you can choose a new password. It works for 24 hours.
account_help-unlock = They unlocked your account, so you can sign in again.
account_help-disable = They turned off your portal account. Call us if you have questions.
account_help-not-you = If you did not ask for this, call us right away at { $phone }.
account_help-sms-code = { $clinic }: staff made a one-time code for your portal account. Not you? Call { $phone } right away.
account_help-sms-unlock = { $clinic }: staff unlocked your portal account. Not you? Call { $phone } right away.
account_help-sms-disable = { $clinic }: your portal account was turned off. Questions? Call { $phone }.
