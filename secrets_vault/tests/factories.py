import factory

from secrets_vault.models import Secret, SecretType


class SecretFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Secret

    name = factory.Sequence(lambda n: f"secret-{n}")
    type = SecretType.OPENAI
    value = factory.Sequence(lambda n: f"sk-test-value-{n:08d}")


class OpenAISecretFactory(SecretFactory):
    type = SecretType.OPENAI
    name = factory.Sequence(lambda n: f"openai-{n}")


class KeboolaSecretFactory(SecretFactory):
    type = SecretType.KEBOOLA
    name = factory.Sequence(lambda n: f"keboola-{n}")
    value = factory.Sequence(lambda n: f"kbc-token-{n:08d}")
