"""The sending policy page: the tenant's settings next to what the law imposes."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from tenants.http import audit_context
from tenants.views import require_admin

from ..compliance.gate import region_rules
from ..compliance.policy import sending_policy_edit, sending_policy_get
from ..compliance.regions import region_name, statutory_rules
from ..forms.policy import SendingPolicyForm, region_windows_text
from ..models import SendingPolicy

# --- Sending policy ----------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def sending_policy(request):
    """Everyone with access reads the policy and what the law adds to it; admins change it."""
    tenant = request.tenant
    policy = sending_policy_get(tenant=tenant)
    policy.refresh_from_db()  # a row created just now still holds its defaults as strings
    form = None
    if request.method == "POST":
        require_admin(request)  # TenantMiddleware refuses read-only roles first; don't rely on it alone
    if request.tenant_access.can_write and request.method == "GET":
        form = SendingPolicyForm(instance=sending_policy_get(tenant=tenant))
    elif request.tenant_access.can_write:

        def validated(locked: SendingPolicy) -> dict | None:
            # The form validates a copy (the locked row), so the service can see what actually
            # changed; only what this admin edited: its other values may predate another save.
            nonlocal form
            form = SendingPolicyForm(request.POST, instance=locked)
            return form.changes() if form.is_valid() else None

        try:
            changed = sending_policy_edit(tenant=tenant, edit=validated, audit=audit_context(request))
        except ValidationError as exc:  # the service's own check under the lock; nothing was written
            changed = None
            form.add_error(None, exc)
        if changed is not None:
            if changed:
                labels = [str(form.fields[name].label) for name in changed]
                messages.success(request, f"Sending policy saved: {'; '.join(labels)}.")
            else:
                messages.info(request, "Nothing changed: the sending policy is as it was.")
            return redirect("sending_policy", tenant_slug=tenant.slug)
    rules = statutory_rules()
    # The regions where the law or the tenant's own lines make the rules differ from the default.
    regions = sorted({r.region for r in rules} | {str(k).upper() for k in policy.region_windows or {}})
    in_force = []
    for region in regions:
        applied = region_rules(policy=policy, region=region)
        # Settings saved before the form refused them, which the gate sets aside here (and logs).
        problems = []
        if applied.policy_window_disjoint:
            problems.append(
                f"Your window {policy.quiet_start:%H:%M}–{policy.quiet_end:%H:%M} misses the law's "
                f"{applied.law[0]:%H:%M}–{applied.law[1]:%H:%M} here: the gate sends in the law's window instead, "
                "outside the hours you chose. Change the window."
            )
        for line in applied.lines_ignored:
            problems.append(f"Your line for {line} would close the window here: the gate ignores it. Change it.")
        in_force.append(
            {
                "region": region,
                "name": region_name(region) or region,
                "window": applied.window,
                "cap": applied.cap,
                "problems": problems,
            }
        )
    return render(
        request,
        "messaging/sending_policy.html",
        {
            "tenant": tenant,
            "policy": policy,
            "form": form,
            "region_lines": region_windows_text(policy.region_windows),
            "statutory_rules": rules,
            "in_force": in_force,
            "set_aside": any(row["problems"] for row in in_force),
            # Saved before the form and the service refused it (a policy row from elsewhere).
            "never_opens": not policy.quiet_start < policy.quiet_end,
        },
    )
