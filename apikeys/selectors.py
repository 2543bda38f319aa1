from apikeys.models import ApiKey


def apikey_list(*, include_revoked: bool = True) -> list[ApiKey]:
    keys = ApiKey.objects.select_related("script", "owner")
    if not include_revoked:
        keys = keys.filter(revoked_at__isnull=True)
    return list(keys)
