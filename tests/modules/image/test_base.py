import pytest

from modules.image.base import ImageRequest


def test_defaults():
    req = ImageRequest("the Destined One in snow")
    assert (req.width, req.height, req.steps, req.seed) == (512, 512, 25, None)


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"prompt": " "}, "needs a prompt"),
        ({"steps": 0}, "steps"),
        ({"width": 500}, "multiples of 8"),
        ({"height": 32}, ">= 64"),
    ],
)
def test_bad_requests(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        ImageRequest(**{"prompt": "x", **kwargs})
