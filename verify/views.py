from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def verification_list(request):
    return render(request, "verify/verification_list.html", {"tenant": request.tenant})
