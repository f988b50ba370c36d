"""Reading user inputs: images of any common kind, and the image list behind ``input=<image|folder|glob>``."""

from insseg.io.images import IMAGE_EXTENSIONS, expand_inputs, input_root, load_image_rgb

__all__ = ["IMAGE_EXTENSIONS", "expand_inputs", "input_root", "load_image_rgb"]
