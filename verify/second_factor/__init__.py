"""The staff sign-in second factor (issue 13, "Verify in the portal"; throttling as issue 14).

After the password, a user with a confirmed device must enter a code before any other page
(`middleware.SecondFactorMiddleware`); superusers and support staff must enrol one first.
Devices: an authenticator app (TOTP) and one-time recovery codes (`verify.models.second_factor`).
Wrong codes are throttled per (account, client address) like wrong passwords (`throttle`).
"""
