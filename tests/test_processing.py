import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from hf_simo import make_image_processor, normalize_images


def test_normalize_images_matches_the_image_processor():
    processor = make_image_processor()
    images = torch.rand(2, 3, 11, 13)
    ours = normalize_images(images, processor)
    uint8 = (images * 255).round().to(torch.uint8)
    theirs = processor(list(uint8.permute(0, 2, 3, 1).numpy()), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(normalize_images(uint8.float() / 255, processor), theirs, atol=1e-5, rtol=1e-5)
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(ours, (images - mean) / std)


def test_processor_keeps_geometry():
    processor = make_image_processor()
    assert processor.do_resize is False and processor.do_pad is False
    image = (torch.rand(17, 29, 3) * 255).to(torch.uint8).numpy()
    assert processor(image, return_tensors="pt")["pixel_values"].shape == (1, 3, 17, 29)
