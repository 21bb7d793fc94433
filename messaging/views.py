from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def message_list(request):
    return render(request, "messaging/message_list.html", {"tenant": request.tenant})


@require_GET
def opt_out_list(request):
    return render(request, "messaging/opt_out_list.html", {"tenant": request.tenant})


@require_GET
def consent_list(request):
    return render(request, "messaging/consent_list.html", {"tenant": request.tenant})


@require_GET
def number_list(request):
    return render(request, "messaging/number_list.html", {"tenant": request.tenant})
