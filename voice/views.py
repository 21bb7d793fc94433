from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def call_list(request):
    return render(request, "voice/call_list.html", {"tenant": request.tenant})
